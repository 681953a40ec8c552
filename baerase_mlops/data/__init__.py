"""Clean reference data: loading, the in-memory contract, and splits."""

from baerase_mlops.data.imageset import ImageSet, from_arrays
from baerase_mlops.data.sources import load_images
from baerase_mlops.data.split import clean_subset, stratified_split

__all__ = ["ImageSet", "clean_subset", "from_arrays", "load_images", "stratified_split"]
