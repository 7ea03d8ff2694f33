"""Fixtures for the download, httpserve and badinputs tests: the generated files, made once."""
from __future__ import annotations

import pytest

from l2i_pipeline.demo.inputs import InputFile, bad_inputs, photos


@pytest.fixture(scope="session")
def bad_files() -> list[InputFile]:
    return bad_inputs()


@pytest.fixture(scope="session")
def photo_files() -> list[InputFile]:
    return photos()
