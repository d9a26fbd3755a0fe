import petcd


def test_version_is_semver():
    parts = petcd.__version__.split(".")
    assert len(parts) == 3 and all(p.isdigit() for p in parts)
