"""The training core on a toy model: resume rule, bit-exact resume, interrupts, atomic checkpoints, config base.

Oracles: an uninterrupted run (resumed runs must match it bit for bit), the closed-form least-squares solution
the toy regression converges to, and the documented resume rule.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from dataclasses import field as _default

import pytest
import torch

from human3d.config import Config
from human3d.errors import InvalidInputError, ModelFileError
from human3d.train import RunConfig, Trainer, TrainingInterrupted


@dataclass
class ToyModelConfig(Config):
    """The toy model."""

    hidden: int = 0
    """0: linear regression; > 0: a hidden layer of this width."""
    lr: float = 0.1
    """SGD-with-momentum learning rate."""


@dataclass
class ToyConfig(Config):
    model: ToyModelConfig = _default(default_factory=ToyModelConfig)
    """The model."""
    run: RunConfig = _default(default_factory=lambda: RunConfig(max_steps=40, checkpoint_every=10, log_every=5))
    """Run settings."""


TRUE_W = torch.tensor([[1.5], [-2.0], [0.5]])


class ToyTrainer(Trainer):
    """Least squares y = x @ w on random batches (random draws from the trainer's generator)."""

    kind = "toy"
    config_class = ToyConfig
    needs_data = False

    def build(self):
        h = self.config.model.hidden
        self.model = torch.nn.Linear(3, 1, bias=False) if h == 0 else torch.nn.Sequential(
            torch.nn.Linear(3, h), torch.nn.Tanh(), torch.nn.Linear(h, 1))  # fmt: skip
        self.opt = torch.optim.SGD(self.model.parameters(), lr=self.config.model.lr, momentum=0.9)
        self.seen = 0

    def train_step(self):
        x = torch.randn(16, 3, generator=self.generator)
        y = x @ TRUE_W + 0.01 * torch.randn(16, 1)  # global RNG too: must be restored on resume
        loss = ((self.model(x) - y) ** 2).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.seen += 16
        return {"loss": float(loss.detach())}

    def state_tensors(self):
        return dict(self.model.state_dict())

    def load_state_tensors(self, tensors, state, path):
        self.model.load_state_dict(tensors)
        self.seen = int(state["seen"])

    def optimizers(self):
        return {"sgd": self.opt}

    def extra_state(self):
        return {"seen": self.seen}


class _Kill(Exception):
    pass


def _kill_at(step):
    def cb(trainer, info):
        if info["step"] == step:
            raise _Kill

    return cb


def test_converges_to_the_least_squares_solution(tmp_path):
    tr = ToyTrainer(tmp_path / "run", overrides={"run.max_steps": 200})
    tr.train(progress=False)
    torch.testing.assert_close(tr.model.weight.detach().T, TRUE_W, atol=0.01, rtol=0)
    log = [json.loads(x) for x in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(5, 201, 5))
    assert (tmp_path / "run" / "training.png").is_file()
    run = json.loads((tmp_path / "run" / "run.json").read_text())
    assert run["kind"] == "toy" and run["config"]["run"]["max_steps"] == 200 and run["data"] is None


@pytest.mark.parametrize("kill_step", [3, 10, 17, 39])
def test_resume_after_a_kill_is_bit_exact(tmp_path, kill_step):
    full = ToyTrainer(tmp_path / "full", overrides={"model.hidden": 4})
    full.train(progress=False)
    part = ToyTrainer(tmp_path / "part", overrides={"model.hidden": 4})
    with pytest.raises(_Kill):
        part.train(callback=_kill_at(kill_step), progress=False)
    resumed = ToyTrainer(tmp_path / "part")  # config from the run folder
    assert resumed.step == (kill_step // 10) * 10  # never back by more than the interval
    assert resumed.resumed == (kill_step >= 10)  # before the first checkpoint the run restarts from its config
    resumed.train(progress=False)
    assert resumed.step == full.step == 40 and resumed.seen == full.seen
    for (k, a), b in zip(full.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.equal(a, b), k
    assert not list((tmp_path / "part").glob(".*"))  # no temporary files left by the atomic writes


def test_resume_rule_extends_budget_and_refuses_model_changes(tmp_path):
    out = tmp_path / "run"
    ToyTrainer(out, overrides={"run.max_steps": 10}).train(progress=False)
    done = ToyTrainer(out)
    assert done.step == 10 and done.done()
    assert done.train(progress=False)["step"] == 10  # a finished run does nothing more
    more = ToyTrainer(out, overrides={"run.max_steps": 15, "run.log_every": 1})
    assert more.train(progress=False)["step"] == 15
    with pytest.raises(InvalidInputError, match=r"model.lr: run has 0.1, asked for 0.5.*new --out"):
        ToyTrainer(out, overrides={"model.lr": 0.5})
    with pytest.raises(InvalidInputError, match="model.hidden"):
        ToyTrainer(out, config=ToyConfig(model=ToyModelConfig(hidden=8)))


def test_time_budget_stops_and_extends(tmp_path):
    tr = ToyTrainer(tmp_path / "run", overrides={"run.time_budget_s": 0.05, "run.max_steps": 10**9})
    tr.train(progress=False)
    assert tr.elapsed >= 0.05 and 0 < tr.step < 10**9
    n = tr.step
    more = ToyTrainer(tmp_path / "run", overrides={"run.time_budget_s": 0.1})
    more.train(progress=False)
    assert more.step > n and more.elapsed >= 0.1


def test_sigint_and_sigterm_save_then_raise(tmp_path):
    for sig in (signal.SIGINT, signal.SIGTERM):
        out = tmp_path / sig.name
        tr = ToyTrainer(out, overrides={"run.checkpoint_every": 1000})

        def send(trainer, info, sig=sig):
            if info["step"] == 7:
                os.kill(os.getpid(), sig)

        with pytest.raises(TrainingInterrupted, match=sig.name) as e:
            tr.train(callback=send, progress=False)
        assert e.value.step == 7 and e.value.checkpoint == out / "checkpoint.safetensors"
        assert ToyTrainer(out).step == 7
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored


def test_kill_9_at_random_points_leaves_a_loadable_checkpoint(tmp_path):
    """A real SIGKILL of a training process, several times: the checkpoint always loads and the step never goes
    back by more than the checkpoint interval."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(os.path.dirname(__file__))!r})
        from test_train_core import ToyTrainer
        tr = ToyTrainer(sys.argv[1], overrides={{"run.max_steps": 10**7, "run.checkpoint_every": 50,
                                                 "run.log_every": 10**6}})
        print("start", tr.step, flush=True)
        tr.train(progress=False)
    """)
    out = tmp_path / "run"
    last = 0
    for delay in (0.6, 0.9, 1.3):
        p = subprocess.Popen([sys.executable, "-c", script, str(out)], stdout=subprocess.PIPE, text=True)
        start = int(p.stdout.readline().split()[1])
        assert start >= last
        import time

        time.sleep(delay)
        p.kill()
        p.wait()
        tr = ToyTrainer(out)
        assert tr.step >= start  # loadable, and never behind where this process started
        last = tr.step
    assert last > 0


def test_bad_run_folders(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InvalidInputError, match="not a folder"):
        ToyTrainer(tmp_path / "file")
    out = tmp_path / "run"
    ToyTrainer(out, overrides={"run.max_steps": 2}).train(progress=False)
    (out / "checkpoint.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelFileError, match="corrupt"):
        ToyTrainer(out)
    (out / "run.json").write_text("{ nope")
    with pytest.raises(ModelFileError, match="unreadable"):
        ToyTrainer(out)
    with pytest.raises(ModelFileError, match="not a toy run folder"):
        ToyTrainer.from_run(tmp_path)



class TwoNetTrainer(ToyTrainer):
    """The toy regression through two modules (``net`` then ``head``), checkpointed by the core's default
    :meth:`~Trainer.checkpoint_modules` path (no state_tensors of its own)."""

    kind = "toy2"

    def build(self):
        self.net = torch.nn.Linear(3, 3 + self.config.model.hidden, bias=False)
        self.head = torch.nn.Linear(3 + self.config.model.hidden, 1, bias=False)
        self.model = torch.nn.Sequential(self.net, self.head)  # train_step's forward
        self.opt = torch.optim.SGD(self.model.parameters(), lr=self.config.model.lr, momentum=0.9)
        self.seen = 0

    def checkpoint_modules(self):
        return {"net": self.net, "head": self.head}

    state_tensors = Trainer.state_tensors

    def load_state_tensors(self, tensors, state, path):
        Trainer.load_state_tensors(self, tensors, state, path)
        self.seen = int(state["seen"])


def test_checkpoint_modules_prefix_keys_and_resume_bit_exact(tmp_path):
    from safetensors.torch import load_file

    full = TwoNetTrainer(tmp_path / "full", overrides={"model.lr": 0.02})
    full.train(progress=False)
    part = TwoNetTrainer(tmp_path / "part", overrides={"model.lr": 0.02})
    with pytest.raises(_Kill):
        part.train(callback=_kill_at(25), progress=False)
    keys = set(load_file(str(tmp_path / "part" / "checkpoint.safetensors")))
    assert {"model.net.weight", "model.head.weight"} <= keys  # the core's model.* namespace, then the prefixes
    resumed = TwoNetTrainer(tmp_path / "part")
    assert resumed.step == 20
    resumed.train(progress=False)
    assert torch.equal(resumed.net.weight, full.net.weight) and torch.equal(resumed.head.weight, full.head.weight)
    # a checkpoint whose head has another shape: a ModelFileError naming the checkpoint and the prefix
    out = tmp_path / "other"
    TwoNetTrainer(out, overrides={"run.max_steps": 10}).train(progress=False)
    run = json.loads((out / "run.json").read_text())
    run["config"]["model"]["hidden"] = 2
    (out / "run.json").write_text(json.dumps(run))
    with pytest.raises(ModelFileError, match=r"checkpoint '.*checkpoint.safetensors'.*'net\.\*'"):
        TwoNetTrainer(out)


# ------------------------------------------------------------------------------------------------ config base
def test_config_base_is_strict_and_composed():
    c = ToyConfig()
    assert ToyConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert c.replace(**{"run.max_steps": 7}).run.max_steps == 7 and c.run.max_steps == 40  # copies
    with pytest.raises(InvalidInputError, match="unknown key 'run.max_stepz'"):
        c.replace(**{"run.max_stepz": 7})
    with pytest.raises(InvalidInputError, match="unknown key 'bogus'"):
        ToyConfig.from_dict({"bogus": 1})
    with pytest.raises(InvalidInputError, match="run.max_steps: expected a positive integer"):
        c.replace(**{"run.max_steps": 0})  # validation in __post_init__
    with pytest.raises(InvalidInputError, match="expected a number"):
        c.with_assignments(["model.lr=fast"])
    got = c.with_assignments(["model.lr=1e-3", "run.time_budget_s=null", "run.device=cpu"])
    assert got.model.lr == 1e-3 and got.run.time_budget_s is None and got.run.device == "cpu"
    with pytest.raises(InvalidInputError, match="key=value"):
        c.with_assignments(["model.lr"])
    docs = ToyConfig.field_docs()
    assert docs["model.hidden"].startswith("0: linear regression") and "run.max_steps" in docs
    assert c.diff(got) == {"model.lr": (0.1, 1e-3), "run.device": ("auto", "cpu")}


def test_every_trainer_config_documents_every_field():
    from human3d.nerf.config import NerfConfig
    from human3d.splat.config import SplatConfig

    for cls in (NerfConfig, SplatConfig):
        missing = [k for k, v in cls.field_docs().items() if not v]
        assert not missing, (cls.__name__, missing)
