from __future__ import annotations

import pytest

from asyrp_bench.errors import UnknownNameError
from asyrp_bench.registry import Registry


class Base:
    pass


def test_register_and_get():
    reg: Registry[type[Base]] = Registry("thing", base_cls=Base)

    @reg.register("alpha")
    class Alpha(Base):
        pass

    assert reg.get("alpha") is Alpha
    assert "alpha" in reg and reg.names() == ["alpha"] and len(reg) == 1


def test_unknown_name_suggests_and_lists():
    reg: Registry[type[Base]] = Registry("thing")
    reg.register("additive")(Base)
    reg.register("adagn")(Base)
    with pytest.raises(UnknownNameError) as info:
        reg.get("additiv")
    message = str(info.value)
    assert "Did you mean 'additive'" in message and "adagn, additive" in message


def test_duplicate_and_bad_names_rejected():
    reg: Registry[type[Base]] = Registry("thing")
    reg.register("a_b")(Base)
    with pytest.raises(ValueError, match="already registered"):
        reg.register("a_b")(Base)
    with pytest.raises(ValueError, match="snake_case"):
        reg.register("NotSnake")


def test_base_class_enforced_and_lazy_targets():
    reg: Registry[type[Base]] = Registry("thing", base_cls=Base)
    with pytest.raises(TypeError):
        reg.register("x")(int)
    reg.register("lazy", target="tests.test_registry:Base")
    assert not reg.is_loaded("lazy")
    assert reg.get("lazy") is Base and reg.is_loaded("lazy")
    reg.register("wrong", target="collections:OrderedDict")
    with pytest.raises(TypeError):
        reg.get("wrong")
