"""The one device policy."""
import pytest
import torch

from ufm._core.device import default_device, device_kind, resolve_device
from ufm._core.validation import InvalidParameterError


def test_auto_and_none_follow_cuda_availability():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert default_device().type == resolve_device(None).type == resolve_device("auto").type == expected
    assert device_kind("auto") == device_kind(None) == expected


def test_named_devices_are_kept():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert device_kind("cuda:3") == "cuda" and device_kind("cpu") == "cpu"


@pytest.mark.parametrize("name", ["meta", "tpu", "cuda:x", 3])
def test_unknown_devices_name_the_parameter_and_the_valid_names(name):
    with pytest.raises(InvalidParameterError, match=r"The 'device' parameter of solve must be 'auto', 'cpu', 'cuda' "
                                                    r"or 'cuda:N'") as e:
        resolve_device(name, "solve")
    assert e.value.param == "device"


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(InvalidParameterError, match="torch sees no CUDA device here"):
        resolve_device("cuda:0", "train")
