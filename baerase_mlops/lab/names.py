"""The lab's attack and architecture names and trigger defaults, importable without torch (the
CLI's choices and shown defaults come from here, so that nothing is retyped there)."""

ATTACKS = ("badnets", "trojan", "blended", "sticker", "wanet", "sig", "none")
ARCHITECTURES = ("small_cnn", "lenet5", "conv_bn", "vgg_bn", "resnet_narrow", "resnet18")
BADNETS_PATTERNS = ("solid", "checkerboard", "random")
# The lab's defaults of the trigger parameters that are not per-attack tables in lab.attacks.
TRIGGER_DEFAULTS = {"pattern": "solid", "alpha": 0.15, "trigger_seed": 0}
