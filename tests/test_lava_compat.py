"""The Python 3.11 compat layer for lava-nc 0.10.0 / lava-dl 0.6.0."""

import dataclasses
import subprocess
import sys

import numpy as np
import pytest

from slt_deploy.core import compat as lava_compat


def test_lava_fails_on_311_without_the_compat_layer():
    # Pins the defect the layer exists for; if a future lava fixes it, this test says so.
    result = subprocess.run(
        [sys.executable, "-c", "import lava.magma.compiler.var_model"], capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "mutable default" in result.stderr and "use default_factory" in result.stderr


def test_compat_layer_imports_lava_and_lava_dl():
    original = dataclasses._get_field
    lava_compat.import_lava(with_dl=True)
    assert dataclasses._get_field is original  # the patch is removed after the import
    assert lava_compat.patched_fields
    assert all(name.startswith("lava.") for name in lava_compat.patched_fields)
    import lava.lib.dl.netx  # noqa: F401
    import lava.lib.dl.slayer  # noqa: F401
    import lava.magma.core.run_configs  # noqa: F401
    import lava.proc.lif.process  # noqa: F401

    # defaults became per-instance copies, not a shared object
    from lava.magma.compiler.var_model import ChipEncoder

    a, b = ChipEncoder(), ChipEncoder()
    assert a.x == b.x and a.x is not b.x


def test_compat_layer_does_not_change_other_dataclasses():
    lava_compat.import_lava()

    @dataclasses.dataclass
    class Inner:
        value: int = 0

    with pytest.raises(ValueError, match="mutable default"):

        @dataclasses.dataclass
        class Outer:
            inner: Inner = Inner()


def test_tiny_lava_network_runs_on_loihi2simcfg(no_leaks):
    lava_compat.import_lava()
    from lava.magma.core.run_conditions import RunSteps
    from lava.magma.core.run_configs import Loihi2SimCfg
    from lava.proc.dense.process import Dense
    from lava.proc.io.sink import RingBuffer as Sink
    from lava.proc.io.source import RingBuffer as Source
    from lava.proc.lif.process import LIF

    source = Source(data=np.ones((2, 5)))
    dense = Dense(weights=np.diag([1.0, 0.5]))
    lif = LIF(shape=(2,), du=1.0, dv=0.5, vth=1.0)
    sink = Sink(shape=(2,), buffer=5)
    source.s_out.connect(dense.s_in)
    dense.a_out.connect(lif.a_in)
    lif.s_out.connect(sink.a_in)
    try:
        lif.run(condition=RunSteps(num_steps=5), run_cfg=Loihi2SimCfg(select_tag="floating_pt"))
        spikes = sink.data.get()
    finally:
        lif.stop()
    # Dense delays by one step; v = 0.5 v + w: w=1 -> 0, 1, 1.5 (spike), 1, 1.5 (spike)
    assert spikes[0].tolist() == [0, 0, 1, 0, 1]
    # w=0.5 -> 0, 0.5, 0.75, 0.875, 0.9375: never above 1
    assert spikes[1].tolist() == [0, 0, 0, 0, 0]
