"""Weights files a user names: read bounded, checked to be a state dict of named tensors, never
unpickled beyond that, and each refusal says what the file is (never "weights_only=False")."""

import pickle

import pytest
import torch

from stagegen.metrics.tf_inception import TFInceptionFeatures
from stagegen.weights import MissingWeightsError, read_state_bytes


def test_a_state_dict_of_tensors_is_read_with_its_bytes(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"conv.weight": torch.ones(2, 2)}, path)
    state, data = read_state_bytes(path, "the test weights")
    assert torch.equal(state["conv.weight"], torch.ones(2, 2)) and data == path.read_bytes()


class _Payload:
    def __reduce__(self):
        return (print, ("ran",))


@pytest.mark.parametrize(
    ("content", "said"),
    [
        (lambda p: p.write_bytes(pickle.dumps({"w": _Payload()})), "holds other objects, which stagegen never unpickles"),
        (lambda p: torch.save([torch.zeros(1)], p), "holds a list, not a state dict of named tensors"),
        (lambda p: torch.save({"w": 3}, p), "holds a dict, not a state dict of named tensors"),
        (lambda p: p.write_bytes(b"not a weights file"), "not a PyTorch file"),
    ],
    ids=["code", "list", "not tensors", "text"],
)
def test_anything_else_is_named_for_what_it_is(tmp_path, content, said):
    path = tmp_path / "w.pth"
    content(path)
    with pytest.raises(MissingWeightsError, match=said) as refused:
        read_state_bytes(path, "the test weights")
    assert "weights_only=False" not in str(refused.value)


def test_a_device_or_an_oversized_file_is_refused_before_it_is_read(tmp_path):
    with pytest.raises(MissingWeightsError, match="/dev/zero is not a file; give the weights file"):
        read_state_bytes("/dev/zero", "the test weights")
    sparse = tmp_path / "huge.pth"
    with open(sparse, "wb") as f:  # 6 GB on paper, nothing on disk: read whole it was a MemoryError
        f.truncate(6 * 2**30)
    with pytest.raises(MissingWeightsError, match="is 6,144 MB, larger than any weights file it takes"):
        read_state_bytes(sparse, "the test weights")


def test_tf_inception_weights_named_as_a_device_say_so(tmp_path):
    """`--tf-inception-weights /dev/zero` said "expected zero in /dev"."""
    with pytest.raises(MissingWeightsError, match="TF-Inception weights: /dev/zero is not a file"):
        TFInceptionFeatures("/dev/zero")
