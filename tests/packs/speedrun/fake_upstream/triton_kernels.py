"""Stand-in for upstream's Triton kernels file (labmind's tests): copied into the task as an editable file."""


def relu_squared(x):
    return x.clamp_min(0) ** 2
