"""Every tunable number of baerase-mlops, typed, with its default and why.

One dataclass per algorithm; each is passed to that algorithm's constructor. Defaults
are the ones the tests and benchmarks use, so what a user gets out of the box is what
was measured.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LabConfig:
    """How the lab trains a (possibly backdoored) classifier."""

    architecture: str = "small_cnn"  # one of baerase_mlops.lab.models.ARCHITECTURES
    width: int = 32  # channels of the first conv block (small_cnn, conv_bn, vgg_bn, resnet_narrow)
    epochs: int = 6  # enough for ACC and ASR >= 95% on builtin:mnist (4,000 training images)
    batch_size: int = 64
    lr: float = 1e-3  # Adam
    poison_rate: float = 0.1  # share of the training set stamped and relabelled
    test_fraction: float = 0.2  # held out (stratified) for accuracy and ASR
    seed: int = 0
    # Training-time augmentation, applied after poisoning as a data loader would: "none",
    # "crop" (random crop after padding by 1/8 of the side) or "crop_flip" (and horizontal
    # flips: right for CIFAR-10, wrong for digits and traffic signs, where a flip changes meaning).
    augment: str = "none"
    optimizer: str = "adam"  # "adam" (constant lr) or "sgd" (momentum 0.9, nesterov, one-cycle lr schedule)
    weight_decay: float = 0.0


@dataclass(frozen=True)
class RecoveryConfig:
    """Trigger recovery (BAERASE generator, or the Neural Cleanse table).

    The loop follows Neural Cleanse's cost schedule: per class, the L1 weight on the mask
    starts once the trigger succeeds, grows while it keeps succeeding and shrinks while
    it fails, and the smallest successful trigger is kept.
    """

    steps: int = 400  # optimiser steps; every step trains all classes of a group together
    batch_size: int = 16  # clean images (each with its own noise draw) per class per step
    round_steps: int = 10  # steps between cost-schedule decisions (Neural Cleanse's "epoch")
    lr: float = 0.1  # Adam on the mask/pattern logits (Neural Cleanse's rate)
    spread_lr: float = 2e-4  # Adam on the generator's noise-driven weights (the paper's rate)
    mine_lr: float = 2e-4  # Adam on the MINE statistics network (the paper's rate)
    noise_dim: int = 64  # z (the paper's)
    hidden_dim: int = 128  # generator and MINE hidden width
    entropy_weight: float = 0.1  # weight of the MINE estimate of I(z; G(z)) (the paper's)
    beta: float = 0.5  # the success term stops pushing once p(target) >= beta (MESA's cap)
    success_threshold: float = 0.99  # share of stamped images sent to the class for a "successful" trigger
    init_cost: float = 1e-3  # first L1 weight, set once a trigger first succeeds
    cost_multiplier: float = 1.5  # up by this, down by this ** 1.5 (Neural Cleanse)
    patience: int = 3  # rounds of success (failure) before the weight goes up (down)
    early_stop_rounds: int = 12  # stop a group when no class improved for this many rounds
    class_chunk: int = 0  # classes per batched optimisation; 0 = all at once, 1 = one by one
    seed: int = 0


@dataclass(frozen=True)
class DetectionConfig:
    """Neural Cleanse's outlier test on the per-class smallest-trigger norms."""

    threshold: float = 2.0  # a class is flagged when its anomaly index exceeds this
    consistency: float = 1.4826  # MAD -> standard deviation for normal data
    # Floor on the MAD as a share of the median norm; 0 gives Neural Cleanse exactly. The
    # classes of a clean model differ naturally in trigger size (the easiest is often half
    # the median), and with ~10 classes the MAD alone can be tiny, which flags such a class.
    # With 0.2 a class must also be below ~40% of the median to be flagged.
    min_relative_mad: float = 0.2


@dataclass(frozen=True)
class ScanConfig:
    """A scan: split the clean set, recover triggers for every class, test for outliers."""

    method: str = "baerase"  # "baerase" (generator) or "neural_cleanse" (cheap baseline)
    recovery: RecoveryConfig = field(default_factory=RecoveryConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    holdout_fraction: float = 0.2  # of the clean set, kept out of recovery to measure recovered-trigger ASR
    eval_draws: int = 4  # fresh triggers per held-out image when measuring recovered-trigger ASR


@dataclass(frozen=True)
class UnlearningConfig:
    """Unlearning the recovered triggers (BAERASE), or the baselines, and when to stop.

    The stopping rule uses only what a defender has: after every ``eval_every`` steps it
    measures clean accuracy and recovered-trigger ASR on the held-out part of the clean
    set, stops once that ASR is at or under ``target_asr``, and keeps the best checkpoint:
    the lowest recovered-trigger ASR among those whose clean accuracy is within
    ``max_accuracy_drop`` of the original (ties: the higher accuracy, then the later).
    Clean accuracy is measured on every clean image (the unlearning part too): with 5% of
    a training set, the held-out part alone cannot resolve a 2-point drop.
    """

    alpha: float = 1.0  # weight of the clean cross-entropy
    # lambda of |theta - theta_0|_1, applied as a proximal step (soft-thresholding) so that
    # weights with no consistent reason to move return exactly to the original. The paper's
    # 1e-6 had no measurable effect here; 1e-3 roughly halved the accuracy lost.
    l1_pull: float = 1e-3
    flood: float = 4.0  # the ascent on a triggered image stops once its CE toward the target reaches this
    lr: float = 0.003  # SGD
    momentum: float = 0.9  # SGD (the paper's)
    grad_clip: float = 5.0  # max gradient norm: ascent must not blow the weights up
    batch_size: int = 32  # clean images per step (as many triggered ones beside them)
    max_steps: int = 300
    eval_every: int = 10  # steps between measurements of the stopping rule
    eval_draws: int = 4  # fresh triggers per held-out image when measuring recovered-trigger ASR
    target_asr: float = 0.01  # stop once the recovered-trigger ASR is at or under this ...
    settle_evals: int = 3  # ... at this many measurements in a row (the smallest trigger goes first)
    amplify: float = 2.0  # masks scaled by u ~ U[1, amplify]: stronger versions are unlearnt too
    max_accuracy_drop: float = 0.02  # a checkpoint may lose at most this clean accuracy
    target_share: float = 0.25  # share of each clean batch drawn from the flagged classes' own images
    # Additions to the paper's loss, both measured on MNIST lab models with 200 clean images:
    # distillation toward the original model's outputs on clean images (0 = the paper's loss)
    # and random shifts of the clean images; together they halved the accuracy lost.
    distill: float = 3.0  # weight of KL(original || model) on clean images
    shift: int = 2  # random translation of clean images by up to this many pixels
    stamp_share: float = 0.2  # NC unlearning: share of clean images stamped (true labels kept)
    seed: int = 0


@dataclass(frozen=True)
class ValidationConfig:
    """Limits of the clean-set validation (Great Expectations, ``data/validate.py``).

    The per-image checks (labels in [0, classes), pixels within the model's input range,
    no NaN/inf, the model's C x H x W) follow from the model's input contract; these are
    the limits on the set as a whole.
    """

    # A scan splits every class into a part for recovery and a held-out part, so it needs
    # two images of each; a 200-image MNIST clean set (5% of the lab's training split) has 20.
    min_per_class: int = 2
    # One class holding more than half of the clean set starves the other classes'
    # trigger recovery, and is what a mislabelled or poisoned set often looks like.
    max_class_share: float = 0.5
    # Exact copies add nothing to recovery and inflate the per-class counts; real sets
    # have few (builtin:mnist and builtin:digits have none).
    max_duplicate_share: float = 0.05


# The clean set a registry command uses when neither the command line, the version's last
# scan (tag baerase.data_uri) nor the registered model (tag baerase.data_uri) names one:
# the MLproject's default, so that a version scanned by `mlflow run .` counts as current.
REGISTRY_DEFAULT_DATA_URI = "builtin:mnist"


@dataclass(frozen=True)
class GatePolicy:
    """When a registry version has passed the gate (DESIGN.md: verdict ``clean``, or
    ``cleaned`` within bounds), checked on its ``baerase.*`` tags."""

    # The unlearning stops at 1% recovered-trigger ASR (UnlearningConfig.target_asr); the
    # ASR recorded on the cleaned version is the real one where the lab trigger is known,
    # measured on other images, and lands within 2% (the MLflow project's tests).
    max_asr: float = 0.02
    max_accuracy_drop: float = 0.02  # accuracy_before - accuracy_after; as UnlearningConfig


@dataclass(frozen=True)
class RegistryScanConfig:
    """``baerase scan-registry``: which versions, how many at once, where."""

    executor: str = "local"  # "local" (a process pool) or "ray" (one task per version)
    workers: int = 2  # scans at once; on CPU each gets cpu_count // workers torch threads
    page_size: int = 100  # registry search page size (models and versions)
    erase: bool = True  # erase a found backdoor and register the cleaned version (the main job)
    experiment: str = "baerase-registry-scans"  # the MLflow experiment of the summary runs
    ray_address: str | None = None  # None: RAY_ADDRESS, else a local instance of `workers` CPUs


@dataclass(frozen=True)
class WebhookConfig:
    """``baerase serve-webhooks``: the receiver, its durable queue and its workers."""

    host: str = "127.0.0.1"
    port: int = 8787
    # Deliveries whose X-MLflow-Timestamp is further than this from now are refused (the
    # Standard Webhooks convention); delivery ids are remembered twice as long, for replays.
    tolerance_s: int = 300
    max_body_bytes: int = 1_000_000  # MLflow's registry payloads are a few hundred bytes
    protected_aliases: tuple[str, ...] = ("champion", "production")
    workers: int = 1  # concurrent scans (processes); 0 queues only (another process drains)
    lease_s: float = 120.0  # a claimed job returns to the queue when its worker stops renewing
    max_attempts: int = 3  # claims of one job before it is marked failed
    poll_s: float = 1.0  # how often an idle worker looks at the queue
    erase: bool = True  # erase a found backdoor and register the cleaned version (the main job)
