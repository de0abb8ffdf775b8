"""pyscript.toml must copy every Python file the browser may import (no browser needed)."""

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def browser_python_files():
    files = sorted(ROOT.glob("raft/**/*.py")) + sorted(ROOT.glob("components/*.py"))
    return {"/" + p.relative_to(ROOT).as_posix() for p in files if "__pycache__" not in p.parts
            and p.parts[-3:-1] != ("raft", "replica")}  # CPython only, never in the browser


def listed_files():
    config = tomllib.loads((ROOT / "pyscript.toml").read_text())
    return config.get("files", {})


def test_every_browser_module_is_listed():
    missing = sorted(browser_python_files() - set(listed_files()))
    lines = "\n".join(f'"{m}" = ".{m}"' for m in missing)
    assert not missing, "add these lines to [files] in pyscript.toml:\n" + lines


def test_every_listed_file_exists_and_lands_at_its_import_path():
    for url, dest in listed_files().items():
        assert (ROOT / url.lstrip("/")).is_file(), f"pyscript.toml lists {url}, which does not exist"
        assert dest == "." + url, f"{url} must be copied to .{url} so its import path matches"


def test_no_interpreter_key_so_offline_loader_picks_the_runtime():
    config = tomllib.loads((ROOT / "pyscript.toml").read_text())
    assert "interpreter" not in config


def rewrite_files_section():
    """`python tests/browser/test_pyscript_config.py`: list every module in [files]."""
    path = ROOT / "pyscript.toml"
    text = path.read_text()
    head = text[: text.index("[files]\n") + len("[files]\n")]
    body = "".join(f'"{m}" = ".{m}"\n' for m in sorted(browser_python_files()))
    path.write_text(head + body)
    print(f"pyscript.toml: {len(browser_python_files())} files listed")


if __name__ == "__main__":
    rewrite_files_section()
