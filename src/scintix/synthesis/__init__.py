"""Generative augmentation: a conditional DCGAN (P2, P3), sampling as a dataset, quality and memorisation checks.

Pipeline order: :mod:`.gan` (networks, losses) and :mod:`.diffaug` ->
:mod:`.train_gan` (``scintix gan train``) -> :mod:`.sample` (``scintix gan
sample``: images + a manifest with provenance) -> :mod:`.quality` (FID, KID,
nearest training image). The classifier takes generated rows as training rows
only (:mod:`scintix.data.generated`).
"""
