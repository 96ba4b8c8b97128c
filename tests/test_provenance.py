"""``benchmarks.provenance.git_sha``: a rewritten result file does not mark the code dirty; a changed source does."""

import subprocess

from benchmarks import provenance


def test_result_files_do_not_make_the_sha_dirty(tmp_path, monkeypatch):
    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    (tmp_path / "code.py").write_text("x = 1\n")
    (tmp_path / "benchmarks" / "results" / "run.json").write_text("{}\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "first")
    monkeypatch.setattr(provenance, "REPO", tmp_path)
    clean = provenance.git_sha()
    assert clean and len(clean) == 40
    (tmp_path / "benchmarks" / "results" / "run.json").write_text('{"fid": 1}\n')
    assert provenance.git_sha() == clean
    (tmp_path / "code.py").write_text("x = 2\n")
    assert provenance.git_sha() == clean + "-dirty"
