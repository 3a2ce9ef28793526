"""Reading images, manifests, splits and datasets."""
