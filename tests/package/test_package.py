import rollkit


def test_version_is_set():
    assert rollkit.__version__
