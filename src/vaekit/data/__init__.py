"""Data: loaders for arrays, .npz, IDX, image folders and tables; preprocessing declared per likelihood."""
from .loaders import Dataset, infer_image_shape, load_array, load_splits
from .transforms import BatchTransform, prepare

__all__ = ["Dataset", "load_array", "load_splits", "infer_image_shape", "prepare", "BatchTransform"]
