"""Training: seeding, device/precision fast paths, checkpoints, the loop, and run orchestration."""
