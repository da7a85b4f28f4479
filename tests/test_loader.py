import sys

import pytest
import torch

from homework import loader, settings
from homework.cli import cli
from homework.base_llm import BaseLLM


@pytest.fixture
def offline(monkeypatch):
    monkeypatch.setattr(loader, "_hub_reachable", lambda timeout=2.0: False)
    monkeypatch.setattr(loader, "_in_hf_cache", lambda name: False)


def test_default_falls_back_to_embedded_offline(offline, capsys):
    path, local_only = loader.resolve()
    assert path == str(loader.embedded_path()) and local_only
    assert "using the embedded SmolLM2-135M-Instruct" in capsys.readouterr().err


def test_cached_hub_name_loads_from_cache_without_network(offline, monkeypatch):
    monkeypatch.setattr(loader, "_in_hf_cache", lambda name: True)
    assert loader.resolve("HuggingFaceTB/SmolLM2-1.7B-Instruct") == ("HuggingFaceTB/SmolLM2-1.7B-Instruct", True)


def test_reachable_hub_loads_by_name_when_nothing_local_can_serve(offline, monkeypatch):
    monkeypatch.setattr(loader, "_hub_reachable", lambda timeout=2.0: True)
    monkeypatch.setattr(loader, "embedded_ready", lambda: False)
    assert loader.resolve() == (loader.DEFAULT_CHECKPOINT, False)
    monkeypatch.setenv(settings.CHECKPOINT, loader.DEFAULT_CHECKPOINT)  # asked for by name: the hub, embedded or not
    monkeypatch.setattr(loader, "embedded_ready", lambda: True)
    assert loader.resolve() == (loader.DEFAULT_CHECKPOINT, False)


def test_no_network_when_the_embedded_model_is_ready(offline, monkeypatch, capsys):
    monkeypatch.setattr(loader, "_hub_reachable", lambda timeout=2.0: pytest.fail("the hub was probed"))
    monkeypatch.setattr(loader, "embedded_ready", lambda: True)
    assert loader.resolve() == (str(loader.embedded_path()), True)
    assert f"HOMEWORK_CHECKPOINT={loader.DEFAULT_CHECKPOINT} downloads it" in capsys.readouterr().err


def test_a_cached_hub_model_loads_without_network(offline, monkeypatch):
    monkeypatch.setattr(loader, "_in_hf_cache", lambda name: True)
    monkeypatch.setattr(loader, "_hub_reachable", lambda timeout=2.0: pytest.fail("the hub was probed"))
    assert loader.resolve() == (loader.DEFAULT_CHECKPOINT, True)


def test_an_unwritable_cache_reads_the_gguf_as_it_is(monkeypatch, tmp_path):
    # a graded case writes nothing: the embedded model is read from its GGUF file, and nothing is left behind
    (tmp_path / "cache").mkdir()
    monkeypatch.setenv(settings.CACHE, str(tmp_path / "cache" / "sub"))
    monkeypatch.setattr(loader, "convert_gguf", lambda gguf, target: (_ for _ in ()).throw(PermissionError("no writes")))
    path = loader.embedded_dir()
    assert path.suffix == ".gguf" and path.is_file() and not (tmp_path / "cache" / "sub").exists()


@pytest.mark.parametrize("value", ["embedded", loader.EMBEDDED])
def test_env_var_forces_the_embedded_model(offline, monkeypatch, value):
    monkeypatch.setenv(settings.CHECKPOINT, value)
    assert loader.resolve("HuggingFaceTB/SmolLM2-1.7B-Instruct") == (str(loader.embedded_path()), True)


def test_env_var_forces_a_local_directory(offline, monkeypatch, tiny_base):
    monkeypatch.setenv(settings.CHECKPOINT, str(tiny_base))
    assert loader.resolve() == (str(tiny_base), True)


def test_forced_hub_name_that_cannot_load_does_not_fall_back(offline, monkeypatch):
    monkeypatch.setenv(settings.CHECKPOINT, "HuggingFaceTB/SmolLM2-360M-Instruct")
    with pytest.raises(loader.CheckpointError, match="hub is unreachable"):
        loader.resolve()


@pytest.mark.parametrize(
    "checkpoint,message",
    [
        ("./no/such/model", "is not a model directory"),
        ("/tmp", "is not a model directory"),
        ("someone/unknown-model", "can't load 'someone/unknown-model'"),
    ],
)
def test_bad_checkpoints_get_one_line_errors(offline, checkpoint, message):
    with pytest.raises(loader.CheckpointError, match=message) as info:
        loader.resolve(checkpoint)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("checkpoint", ["bad name!", "-org/model", "org/model.", "a" * 120 + "/b"])
def test_malformed_hub_names_get_one_line_errors(monkeypatch, checkpoint):
    monkeypatch.setattr(loader, "_hub_reachable", lambda timeout=2.0: False)  # the real cache lookup validates the name
    with pytest.raises(loader.CheckpointError, match="neither a model directory nor a hub name") as info:
        loader.resolve(checkpoint)
    assert "\n" not in str(info.value)


def test_an_adapter_folder_is_not_a_model(offline, tmp_path):
    (tmp_path / "adapter_config.json").write_text("{}")
    with pytest.raises(loader.CheckpointError, match="holds a LoRA adapter, not a model"):
        loader.resolve(str(tmp_path))


def test_a_model_folder_without_weights_is_a_one_line_error(offline, tiny_base):
    (tiny_base / "model.safetensors").unlink()
    with pytest.raises(loader.CheckpointError, match=f"can't load '{tiny_base}'") as info:
        loader.load(str(tiny_base))
    assert "\n" not in str(info.value)


def test_cli_prints_bad_checkpoint_as_one_line(offline):
    pytest.importorskip("fire")
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "homework.base_llm", "test", "--checkpoint", "./no/such/model"],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1] == "error: ./no/such/model is not a model directory (no config.json there)"
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("argv, unknown", [
    (["train", "--bogus", "1"], "takes no --bogus"),
    (["test", "/nonexistent", "--max_questions", "5"], "takes no --max_questions"),  # a typo of --max_question
    (["train", "--max-steps=3", "--nope=2"], "takes no --nope"),
    (["test", "-z"], "takes no -z"),  # a single dash: Fire would hand it to what the command returned
    (["test", "-bogus=1"], "takes no -bogus"),
    (["test", "p", "5", "extra"], "takes no 'extra' \\(too many values\\)"),
    (["test", "--max_question", "3", "p", "q"], "takes no 'q' \\(too many values\\)"),
    (["train", "--bf16=nope"], "--bf16 'nope': a switch is --bf16, --nobf16, or --bf16=True or False"),
    (["train", "--bf16", "1"], "--bf16 '1': a switch is"),
])
def test_an_unknown_flag_is_refused_before_the_command_runs(argv, unknown, monkeypatch):
    pytest.importorskip("fire")
    ran = []

    def train(output_dir: str = "out", max_steps: int = -1, bf16: bool = False):
        ran.append(output_dir)

    def test(path: str = "x", max_question: int = 100):
        ran.append(path)

    monkeypatch.setattr(sys, "argv", ["prog", *argv])
    with pytest.raises(SystemExit, match=f"error: {argv[0]} {unknown}.* \\(it takes --"):
        cli({"train": train, "test": test})
    assert ran == []


@pytest.mark.parametrize("argv", [["train", "--max-steps=3", "--nobf16"], ["train", "--output-dir=o", "--bf16"],
                                  ["test", "p", "--max_question", "2"], ["test", "-m", "2", "p"], ["test", "p", "2"],
                                  ["train", "--bf16=False", "--max_steps", "-1"], ["train", "-b", "True"]])
def test_known_flags_run(argv, monkeypatch):
    pytest.importorskip("fire")
    ran = []
    monkeypatch.setattr(sys, "argv", ["prog", *argv])
    cli({"train": lambda output_dir="out", max_steps=-1, bf16=False: ran.append((max_steps, bf16)),
                "test": lambda path="x", max_question=100: ran.append((path, max_question))})
    assert len(ran) == 1


def test_ctrl_c_prints_one_line_with_what_was_kept(monkeypatch):
    pytest.importorskip("fire")

    def train(output_dir: str = "out"):
        raise KeyboardInterrupt("out/progress.json keeps 3 of 9 questions")

    monkeypatch.setattr(sys, "argv", ["prog", "train"])
    with pytest.raises(SystemExit, match="^stopped \\(Ctrl-C\\): out/progress.json keeps 3 of 9 questions$"):
        cli({"train": train})


def test_the_policy_is_decided_once(capsys):
    loader.policy.cache_clear()
    chosen = loader.policy()
    assert loader.policy() is chosen
    assert capsys.readouterr().err.count("device:") == 1
    # the base's weights train in the inference dtype on a CPU with native bf16 but no AMX, else in fp32 on a CPU
    bf16_base = chosen.dtype == torch.bfloat16 and not loader.cpu_has_amx()
    assert chosen.train_dtype == (torch.bfloat16 if bf16_base else torch.float32) or chosen.device.type == "cuda"


@pytest.mark.parametrize("flags,cuda,bf16,dtype,precision", [
    ("avx512_bf16 avx512_vnni", False, None, torch.bfloat16, {"use_cpu": True, "bf16": False}),  # a bf16 base trains
    ("amx_bf16", False, None, torch.bfloat16, {"use_cpu": True, "bf16": True}),  # bf16 autocast over fp32 weights
    ("avx2 avx512f", False, None, torch.float32, {"use_cpu": True, "bf16": False}),
    ("", True, True, torch.bfloat16, {"bf16": True, "fp16": False}),
    ("", True, False, torch.float16, {"bf16": False, "fp16": True}),
], ids=["cpu avx512_bf16", "cpu amx", "cpu without bf16", "cuda with bf16", "cuda without bf16 (T4)"])
def test_the_policy_picks_the_dtype_the_hardware_runs(monkeypatch, tmp_path, flags, cuda, bf16, dtype, precision):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor : 0\nflags : fpu sse {flags}\n")
    monkeypatch.setattr(loader, "CPUINFO", cpuinfo)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda including_emulation=True: bf16)
    monkeypatch.delenv(settings.DTYPE, raising=False)
    monkeypatch.delenv(settings.QUANT, raising=False)
    loader.policy.cache_clear()
    try:
        chosen = loader.policy()
    finally:
        loader.policy.cache_clear()
    assert chosen.dtype == dtype and chosen.trainer_flags == precision
    assert chosen.quantize == ("int8" if dtype == torch.float32 else "none")  # int8 weights on the fp32 CPU path only
    assert chosen.gradient_checkpointing == cuda
    bf16_base = not cuda and "avx512_bf16" in flags  # no AMX: the base in bf16 under fp32 LoRA, no autocast
    assert chosen.train_dtype == (dtype if cuda or bf16_base else torch.float32)


@pytest.mark.parametrize("value,dtype", [("float32", torch.float32), ("bfloat16", torch.bfloat16), ("float16", torch.float16)])
def test_homework_dtype_overrides_the_inference_dtype(monkeypatch, value, dtype):
    monkeypatch.setenv(settings.DTYPE, value)
    loader.policy.cache_clear()
    try:
        chosen = loader.policy()
    finally:
        loader.policy.cache_clear()
    assert chosen.dtype == dtype
    if chosen.device.type == "cpu":  # training: bf16 autocast only when bf16 is asked for and AMX runs it
        assert chosen.trainer_flags == {"use_cpu": True, "bf16": value == "bfloat16" and loader.cpu_has_amx()}


def test_a_bad_homework_dtype_is_a_one_line_error(monkeypatch):
    monkeypatch.setenv(settings.DTYPE, "int8")
    loader.policy.cache_clear()
    try:
        with pytest.raises(settings.UsageError, match="use float32, bfloat16 or float16"):
            loader.policy()
    finally:
        loader.policy.cache_clear()


@pytest.mark.slow
def test_embedded_model_loads_and_batched_equals_sequential(offline, fp32_policy):  # bf16: padding can flip a token
    llm = BaseLLM()
    assert llm.model.name_or_path == loader.EMBEDDED
    assert llm.tokenizer.pad_token is not None and llm.tokenizer.padding_side == "left"
    assert llm.model.num_parameters() == pytest.approx(134.5e6, rel=0.01)
    prompts = ["How many gram are there per 6 kg?", "Hi", "Convert the measurement of 6 l into cm^3, please."]
    llm.max_new_tokens = 24
    assert llm.batched_generate(prompts) == [llm.generate(p) for p in prompts]


@pytest.mark.slow
def test_the_embedded_model_loads_from_its_gguf_where_nothing_can_be_written(monkeypatch, tmp_path):
    monkeypatch.setenv(settings.CACHE, str(tmp_path / "cache"))
    monkeypatch.setattr(loader, "convert_gguf", lambda gguf, target: (_ for _ in ()).throw(PermissionError("no writes")))
    model, tokenizer = loader.load("embedded", torch.float32)
    assert model.name_or_path == loader.EMBEDDED and model.config.num_hidden_layers == 30
    assert not (tmp_path / "cache").exists()
    assert tokenizer("6 kg")["input_ids"]
