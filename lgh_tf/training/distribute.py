"""tf.distribute for training: the strategy of --strategy, this process's worker, and the training
stream split over replicas by data."""

from __future__ import annotations

from collections.abc import Callable

import tensorflow as tf

# The coordination service's default (10 s) aborted two workers on one busy 2-core host while they
# built their first functions; a worker that really died still stops the others, just later.
HEARTBEAT_TIMEOUT_S = 300


def _configure_coordination(heartbeat_timeout_s):
    """The coordination service of ``TF_CONFIG``'s cluster, as MultiWorkerMirroredStrategy would
    configure it (it keeps one configured before it), with a longer heartbeat timeout."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    cluster = resolver.cluster_spec()
    if context.context().coordination_service is not None or not cluster.jobs:
        return
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=cluster.num_tasks(job))
            for job in ("chief", "worker") if job in cluster.jobs]
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(cluster),
        coordinated_jobs=jobs, heartbeat_timeout_in_ms=heartbeat_timeout_s * 1000)


def make_strategy(name: str) -> tf.distribute.Strategy:
    """``mirrored``: one replica per local GPU, or, without GPUs, per logical CPU device (one unless
    ``tf.config.set_logical_device_configuration`` split the CPU); ``multi_worker``: the cluster
    of ``TF_CONFIG``, each worker's local GPUs (or its CPU)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        devices = None
        if not tf.config.list_logical_devices("GPU"):
            devices = [device.name for device in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        _configure_coordination(HEARTBEAT_TIMEOUT_S)
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ValueError(f"strategy must be default, mirrored or multi_worker, got {name!r}")


def worker_of(strategy: tf.distribute.Strategy) -> tuple[int, int, bool]:
    """(task id, number of workers, chief?) of this process under ``strategy``."""
    resolver = getattr(strategy, "cluster_resolver", None)
    workers = getattr(strategy.extended, "_num_workers", 1)
    task_id = resolver.task_id if resolver is not None and resolver.task_id is not None else 0
    return int(task_id), int(workers), bool(strategy.extended.should_checkpoint)


def distributed_train_dataset(
    strategy: tf.distribute.Strategy,
    make_train_dataset: Callable[..., tf.data.Dataset],
    start_sample: int,
    global_batch_size: int,
) -> tuple[tf.distribute.DistributedDataset, Callable[[tf.distribute.InputContext], tf.data.Dataset]]:
    """The training stream split over ``strategy``'s replicas by data.

    Each worker's input pipeline keeps every ``num_workers``-th sample of the one global stream
    (``make_train_dataset(start_sample, batch_size=per-replica batch, shard=(num_workers,
    worker))`` shards before decoding) and its replicas take consecutive per-replica batches, so
    one step sees the same ``global_batch_size`` samples as one device would, and no two workers
    see the same sample in an epoch.
    """
    replicas = strategy.num_replicas_in_sync
    if global_batch_size % replicas:
        raise ValueError(f"batch_size {global_batch_size} is not divisible by the {replicas} replicas")

    def dataset_fn(context: tf.distribute.InputContext) -> tf.data.Dataset:
        return make_train_dataset(
            start_sample,
            batch_size=context.get_per_replica_batch_size(global_batch_size),
            shard=(context.num_input_pipelines, context.input_pipeline_id),
        )

    return strategy.distribute_datasets_from_function(dataset_fn), dataset_fn
