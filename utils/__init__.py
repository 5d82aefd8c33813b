"""Helper package of the image segmentation course."""
