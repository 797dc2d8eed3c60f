"""Learned fitting: the HMR image regressor (:mod:`human3d.hmr.model`: residual encoder + IEF; trained by
:mod:`human3d.hmr.trainer`'s ``HMRTrainer``; inference and fitting's initializer in :mod:`human3d.hmr.predict`) and
the trainer of learned gradient descent (:mod:`human3d.hmr.lgd_trainer`, ``LGDTrainer``; the network and its use in
SMPLify live in :mod:`human3d.fitting.lgd`)."""

from human3d.hmr.model import HMRNet, HMRNetConfig, crop_images, person_crop, weak_to_perspective
from human3d.hmr.predict import hmr_initializer, load_hmr, predict_people

__all__ = ["HMRNet", "HMRNetConfig", "crop_images", "person_crop", "weak_to_perspective", "hmr_initializer",
           "load_hmr", "predict_people"]
