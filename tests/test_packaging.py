"""What an install must carry: the templates, and no upgrade of Caffe's numpy or protobuf."""
from pathlib import Path

import caffe_nantools
from caffe_nantools.templates import check_layer, template_dir

SOURCE_ROOT = Path(__file__).resolve().parent.parent


def test_templates_are_found_from_the_package():
    folder = template_dir()
    assert (folder / "check_layer.prototxt").is_file()
    package = Path(caffe_nantools.__file__).resolve().parent
    if package.parent == SOURCE_ROOT:
        assert folder == SOURCE_ROOT / "prototxt_templates"
    else:  # an installed wheel carries its own copy
        assert folder == package / "prototxt_templates"


def test_packaged_templates_equal_the_source_ones():
    source = SOURCE_ROOT / "prototxt_templates"
    for path in source.iterdir():
        assert (template_dir() / path.name).read_bytes() == path.read_bytes()


def test_check_layer_snippet_is_in_place_and_points_at_the_layer():
    text = check_layer(name="nancheck/fc7", blob="fc7", param_str="name=fc7 blobs=fc7")
    assert 'bottom: "fc7"' in text and 'top: "fc7"' in text
    assert 'module: "caffe_nantools.layers"' in text
    assert 'layer: "CheckFiniteLayer"' in text
    assert 'param_str: "name=fc7 blobs=fc7"' in text


def test_runtime_dependencies_have_lower_bounds_only():
    text = (SOURCE_ROOT / "pyproject.toml").read_text()
    deps = text.split("dependencies = [", 1)[1].split("]", 1)[0]
    assert '"numpy>=' in deps and '"protobuf>=' in deps
    assert "<" not in deps and "==" not in deps and "~=" not in deps
