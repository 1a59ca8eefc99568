"""The error raised for bad dataset input (COCO JSON, VOC XML, image files, dataset specs)."""


class DatasetError(ValueError):
    """Bad dataset input; the message names the file, the annotation and how to fix it."""
