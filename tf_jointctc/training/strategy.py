"""`tf.distribute` strategy selected by name (the `--strategy` flag of jointctc-train)."""

from __future__ import annotations

import tensorflow as tf
from absl import logging

from tf_jointctc.training.errors import ConfigError

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def split_cpu(num_devices: int) -> None:
    """Splits the CPU into `num_devices` logical devices, so `mirrored` can be exercised without accelerators.

    Must run before TensorFlow initializes its devices (before any op runs).
    """
    if num_devices <= 1:
        return
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * num_devices)


def set_cpu_threads(intra_op: int, inter_op: int) -> dict[str, int]:
    """Sets TensorFlow's intra-op and inter-op thread pools (0 leaves a pool at TensorFlow's default, one thread
    per core); returns the settings in effect, {"intra_op": n, "inter_op": n} (0: TensorFlow's default).

    Must run before TensorFlow initializes its runtime (before any op runs). In a process where it already has,
    a different setting cannot apply: it is logged as a warning and the returned values say what holds.

    Raises:
      ConfigError: a negative count (`train.intra_op_threads` / `train.inter_op_threads`)."""
    settings = (("intra_op", intra_op, tf.config.threading.get_intra_op_parallelism_threads,
                 tf.config.threading.set_intra_op_parallelism_threads),
                ("inter_op", inter_op, tf.config.threading.get_inter_op_parallelism_threads,
                 tf.config.threading.set_inter_op_parallelism_threads))
    for name, wanted, get, set_ in settings:
        if wanted < 0:
            raise ConfigError(f"train.{name}_threads must be >= 0 (0: TensorFlow's default), got {wanted}")
        if wanted and get() != wanted:
            try:
                set_(wanted)
            except RuntimeError:
                logging.warning("%s threads stay at %d: TensorFlow is already running in this process, so %d "
                                "cannot apply (set it before any TensorFlow op runs)", name, get(), wanted)
    return {name: get() for name, _, get, _ in settings}


def make_strategy(name: str, tpu_address: str = "") -> tf.distribute.Strategy:
    """Returns the strategy for `name`.

    - default: the current (single-device) strategy.
    - mirrored: synchronous data parallelism over the local GPUs, or over the logical CPUs of `split_cpu`.
    - multi_worker: synchronous data parallelism over the workers that `TF_CONFIG` lists.
    - tpu: a TPU reached through `tpu_address` (empty: the local or environment-configured TPU).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose one of {', '.join(STRATEGIES)}")
