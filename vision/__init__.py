"""The one vision layer: every camera frame reaches a network through this package.

    resnet10.py    HIL-SERL's ResNet-10 under helper2424/resnet10's parameter names, loaded offline
    preprocess.py  the one image preprocessing (uint8 or [0, 1], CHW or HWC -> ImageNet-normalized)
    backbone.py    the frozen backbone (uint8 images -> feature maps), a vision transformer from a
                   local folder, and the one weights digest (``weights_sha256``)
    encoder.py     the trainable per-camera branch on those maps (spatial embedding -> latent)
    augment.py     DrQ's random shift on uint8 frames
    features.py    feature replay: frames -> stored float16 maps, encoded once, with a cache

``reward/`` (the classifier) and ``learner/`` (the SAC agent) both build on it, so the classifier
and the policy preprocess, encode and identify their backbone the same way. Pure torch, no Ray.
"""
