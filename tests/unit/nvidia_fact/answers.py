"""What the nvidia fact script answers on a host without an NVIDIA GPU.

Shared by tests/unit/nvidia_fact/test_nvidia_fact.py (a fake sysfs) and
molecule/default/tests/test_nvidia_driver.py (the real test host).
"""

NO_GPU = {
    "gpu_count": 0,
    "devices": [],
    "driver_loaded": False,
    "driver_version": None,
    "nouveau_loaded": False,
    "nvidia_smi": None,
}
