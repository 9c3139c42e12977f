"""tools/bench_train.py --profile: kernel time read from TensorFlow's profiler trace."""

import tensorflow as tf
from conftest import load_tool

bench_train = load_tool("bench_train")


def test_profile_kernels_counts_each_kernel_run_by_its_op_type(tmp_path):
    x = tf.random.normal([2, 16, 16, 8])
    w = tf.random.normal([3, 3, 8, 16])

    @tf.function
    def step(x):
        return tf.reduce_sum(tf.nn.relu(tf.nn.conv2d(x, w, 1, "SAME")))

    step(x)
    tf.profiler.experimental.start(str(tmp_path))
    for _ in range(3):
        step(x).numpy()
    tf.profiler.experimental.stop()
    kernels = bench_train.profile_kernels(str(tmp_path))
    convolutions = {t: v for t, v in kernels.items() if "Conv2D" in t}
    # One convolution and one ReLU per call, three calls; runtime events (Executor, Eager...) are not kernels.
    assert sum(count for _, count in convolutions.values()) == 3, kernels
    assert kernels["Relu"][1] == 3
    assert all(ms > 0 for ms, _ in convolutions.values())
    assert not any("::" in t or " " in t for t in kernels)
    # Every convolution op type the CPU runtime used is one KERNEL_KINDS names.
    named = {t for _, types in bench_train.KERNEL_KINDS for t in types}
    assert set(convolutions) <= named
