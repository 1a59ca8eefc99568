"""Detectors and data: COCO/VOC loading, the built-in shapes dataset, box ops, flax detectors,
baseline losses, training and COCO evaluation. Takes loss callables; knows nothing of search."""
