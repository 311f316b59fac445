"""birnn.kernels: fused Triton kernels (a persistent recurrent layer), used on CUDA and tested
on CPU under ``TRITON_INTERPRET=1``. Importing this package needs Triton."""
