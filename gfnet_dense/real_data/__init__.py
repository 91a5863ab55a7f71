"""Real labelled data shipped inside registry packages, converted on request to the
standard layouts: Fashion-MNIST (ImageFolder), brain MRI slices with AAL lobe labels
(MMSegmentation custom layout) and aerial tree crowns (COCO). See each module for
the source package and its license."""
from .packages import RealDataUnavailable, cache_dir

__all__ = ['RealDataUnavailable', 'cache_dir']
