"""Stand-in for upstream's second kernels file (labmind's tests): copied into the task as an editable file."""


def correction(y):
    return y
