"""Build step that pyproject.toml cannot express: the shipped defaults as package data.

The repository keeps templates/, responses/, rules/, parsers/ and config.toml at its top level,
where admins and the docs expect them. A wheel carries a copy of them in
mailbridge/_shipped/ (mailbridge/packaged.py finds it); an editable install reads the
top-level folders themselves, so nothing is copied then.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
SHIPPED = ("templates", "responses", "rules", "parsers", "config.toml")  # = mailbridge.packaged.SHIPPED_ITEMS
# An admin's own files are never shipped, even when a developer has some in the checkout.
IGNORE = shutil.ignore_patterns("*.local.toml", "__pycache__", "*.pyc", ".*")


class BuildWithShipped(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            return
        target = Path(self.build_lib) / "mailbridge" / "_shipped"
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name in SHIPPED:
            source = ROOT / name
            if source.is_dir():
                shutil.copytree(source, target / name, ignore=IGNORE)
                if name in ("templates", "responses"):
                    # templates/local/ and responses/local/ are the admin's; only their README ships.
                    local = target / name / "local"
                    for path in local.iterdir():
                        if path.name != "README.md":
                            shutil.rmtree(path) if path.is_dir() else path.unlink()
            else:
                shutil.copy2(source, target / name)


setup(cmdclass={"build_py": BuildWithShipped})
