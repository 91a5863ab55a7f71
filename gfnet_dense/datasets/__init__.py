"""Data sets for the tools, configs and tests, apart from the models.

``import gfnet_dense`` does not import this subpackage: only the tools, configs and
tests do. Nothing here knows where the repository is: every writer takes the folder
to write to, and downloads go to the cache (``cache_dir()``: ``$GFNET_DENSE_CACHE``
or ``~/.cache/gfnet_dense``).

- ``demo``: the synthetic ADE20K-layout set (``make_ade20k_demo``) and the writer of
  the bundled brain-lobe demo set (``make_brain_lobes_demo``);
- real labelled data shipped inside Debian packages, converted on request to the
  standard layouts (``packages`` fetches them with ``apt-get download``):
  Fashion-MNIST as an ImageFolder (``fashion_mnist``) and brain MRI slices with AAL
  lobe labels in MMSegmentation's custom layout (``aal``). See each module for the
  source package and its license;
- ``fmnist_scenes``: scenes composed from Fashion-MNIST photographs (training scenes
  from the training images, validation scenes from the test images), with class
  masks and boxes, object scale set apart from canvas size;
- ``baselines``: the trivial baselines every learned number is compared with
  (label copy, location prior, box prior, nearest centroid, logistic regression)
  and the metrics, computed as MMSeg and MMDet compute them.
"""
from .packages import RealDataUnavailable, cache_dir

__all__ = ['RealDataUnavailable', 'cache_dir']
