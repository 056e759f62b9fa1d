"""The logical-to-mesh rule resolver and the mesh builder."""
import jax
import pytest
from jax.sharding import PartitionSpec as P

from w2s_jax import sharding

MESH = {"data": 2, "fsdp": 4, "tensor": 1}


def test_first_matching_rule_wins():
  rules = (("embed", "fsdp"), ("embed", "data"), ("mlp", "tensor"))
  assert sharding.resolve(("embed", "mlp"), (64, 128), rules, MESH) == P("fsdp", "tensor")


def test_no_mesh_axis_twice_in_one_tensor():
  rules = (("embed", "fsdp"), ("mlp", "fsdp"), ("mlp", "data"))
  # mlp's first rule wants fsdp, already taken by embed: the next rule for mlp applies.
  assert sharding.resolve(("embed", "mlp"), (64, 128), rules, MESH) == P("fsdp", "data")
  # Two dims of the same logical name: the second cannot reuse the axis either.
  assert sharding.resolve(("embed", "embed"), (64, 64), (("embed", "fsdp"),), MESH) == \
      P("fsdp", None)


def test_multi_axis_rule_and_divisibility_fallback():
  rules = (("batch", ("data", "fsdp")), ("batch", "fsdp"), ("embed", "fsdp"))
  assert sharding.resolve(("batch", None), (16, 3), rules, MESH) == P(("data", "fsdp"), None)
  # 12 is not divisible by 8: the next rule (fsdp = 4) applies.
  assert sharding.resolve(("batch",), (12,), rules, MESH) == P("fsdp")
  # Nothing divides 6 by 4: replicated.
  assert sharding.resolve(("embed",), (6,), rules, MESH) == P(None)


def test_unknown_names_are_replicated_and_rules_are_checked():
  assert sharding.resolve(("norm", "whatever"), (8, 8), sharding.DEFAULT_RULES, MESH) == P(None, None)
  with pytest.raises(ValueError, match=r"config.rules\[1\]: unknown mesh axis 'model'"):
    sharding.check_rules((("embed", "fsdp"), ("mlp", "model")))


def test_order_is_data_not_a_dict():
  # Same entries in another order give another answer: rules must stay an ordered sequence.
  a = (("embed", "fsdp"), ("embed", "data"))
  assert sharding.resolve(("embed",), (8,), a, MESH) == P("fsdp")
  assert sharding.resolve(("embed",), (8,), a[::-1], MESH) == P("data")


def test_make_mesh_fills_minus_one_and_rejects_bad_shapes():
  mesh = sharding.make_mesh(2, -1, 1)
  assert dict(mesh.shape) == {"data": 2, "fsdp": 4, "tensor": 1}
  assert dict(sharding.make_mesh(1, 1, 1, devices=jax.devices()[:1]).shape)["fsdp"] == 1
  with pytest.raises(ValueError, match="at most one axis"):
    sharding.make_mesh(-1, -1, 1)
  with pytest.raises(ValueError, match="needs 6 devices"):
    sharding.make_mesh(2, 3, 1)
  with pytest.raises(ValueError, match="do not divide"):
    sharding.make_mesh(3, -1, 1)
