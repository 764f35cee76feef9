"""What an install must carry: the templates, and no upgrade of Caffe's numpy or protobuf."""

import sys
from pathlib import Path

import pytest

import caffe_nantools
from caffe_nantools.optional import PACKAGES
from caffe_nantools.templates import check_layer, template_dir

SOURCE_ROOT = Path(__file__).resolve().parent.parent


PACKAGE = Path(caffe_nantools.__file__).resolve().parent
INSTALLED = PACKAGE.parent != SOURCE_ROOT


def contents(folder: Path):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_templates_are_found_from_the_package():
    folder = template_dir()
    assert (folder / "check_layer.prototxt").is_file()
    assert folder == (
        PACKAGE / "prototxt_templates" if INSTALLED else SOURCE_ROOT / "prototxt_templates"
    )


@pytest.mark.skipif(
    not INSTALLED,
    reason="caffe_nantools is imported from the source tree, not from an installed wheel",
)
def test_the_installed_wheel_carries_the_source_templates_and_no_others():
    assert contents(PACKAGE / "prototxt_templates") == contents(SOURCE_ROOT / "prototxt_templates")


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


@pytest.mark.parametrize("module", sorted(PACKAGES))
def test_each_optional_module_is_installed_by_the_extra_its_message_names(module):
    package, extra = PACKAGES[module]
    text = (SOURCE_ROOT / "pyproject.toml").read_text()
    listed = text.split(f"\n{extra} = [", 1)[1].split("]", 1)[0]
    assert f'"{package}>=' in listed, (extra, listed)


@pytest.mark.parametrize(
    "module, package, extra",
    [
        ("PIL.Image", "Pillow", "images"),
        ("lmdb", "lmdb", "lmdb"),
        ("plyvel", "plyvel", "leveldb"),
        ("h5py", "h5py", "hdf5"),
    ],
)
def test_a_missing_module_is_named_by_the_package_pip_installs(monkeypatch, module, package, extra):
    from caffe_nantools.scan.stores import StoreError, need

    monkeypatch.setitem(sys.modules, module, None)  # an import of it fails
    with pytest.raises(StoreError) as info:
        need(module)
    assert str(info.value) == (
        f"reading this source needs the Python package '{package}': "
        f"pip install 'caffe-nantools[{extra}]'"
    )
