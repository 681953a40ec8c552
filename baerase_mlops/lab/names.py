"""The lab's attack and architecture names, importable without torch (the CLI's choices come
from here, so that a new attack or architecture never needs retyping there)."""

ATTACKS = ("badnets", "trojan", "blended", "sticker", "wanet", "sig", "none")
ARCHITECTURES = ("small_cnn", "lenet5", "conv_bn", "vgg_bn", "resnet_narrow", "resnet18")
