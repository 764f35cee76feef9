"""A replay bundle read and checked in full before Caffe sees any of it: Caffe ends the
process on a net it cannot build or weights it cannot copy (a failed CHECK, which Python cannot
catch), and quietly keeps the fillers' random values for params the weights lack, which would
replay another iteration than hunt's. What is wrong is one :class:`ReplayError` naming the file.

A bundle (hunt writes one in ``WORKDIR/replay`` at the first failure) is a folder with
``manifest.json`` (``net``, ``weights``, ``inputs``: data top -> ``.npy``, ``iteration``,
``error``, ``sha256``: file name -> digest of each as hunt wrote it), the train net with Input
layers in place of its data layers, the ``.caffemodel`` and one ``.npy`` per data top; each
named by its file name in the folder.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import numbers
import os
from dataclasses import dataclass, field
from typing import Collection, Dict, List, Optional, Tuple

import numpy as np

from caffe_nantools.caffemodel import NotACaffemodel, Param, read_params
from caffe_nantools.errors import NanToolsError, NonFiniteError
from caffe_nantools.files import check_input, read_text, write_text
from caffe_nantools.prototxt import INT64, STRING, Layer, Net, NetState

MANIFEST = "manifest.json"
#: Where hunt leaves the bundle in its workdir; older hunts left it beside the checked copies.
IN_WORKDIR = "replay"
OLD_IN_WORKDIR = os.path.join("checked", "replay")
#: The manifest's digests of the files as hunt wrote them.
SEALED = "sha256"


class ReplayError(NanToolsError):
    """A bundle that cannot be replayed (the message names the file)."""


@dataclass
class Bundle:
    """A bundle whose files are all there and agree with each other (without Caffe)."""

    folder: str
    net_path: str
    net_text: str
    net: Net
    weights_path: str
    weights: Dict[str, List[Param]]
    inputs: Dict[str, np.ndarray]
    iteration: Optional[int]
    error: Optional[NonFiniteError]
    sealed: object = None  # the manifest's SEALED record, as it reads
    input_paths: List[str] = field(default_factory=list)

    @property
    def layers(self) -> List[Layer]:
        return self.net.active_layers(NetState("TRAIN"))


def find_bundle(path: str) -> str:
    """The bundle folder ``path`` names: itself, the folder of a manifest named, or the replay
    folder of a hunt workdir (``replay``, or ``checked/replay`` of older hunts)."""
    if not os.path.exists(path):
        raise ReplayError(
            f"{path}: no such folder; give the bundle hunt wrote (WORKDIR/{IN_WORKDIR})"
        )
    if os.path.basename(path) == MANIFEST and os.path.isfile(path):
        return os.path.dirname(path) or os.curdir
    for folder in (path, os.path.join(path, IN_WORKDIR), os.path.join(path, OLD_IN_WORKDIR)):
        if os.path.isfile(os.path.join(folder, MANIFEST)):
            return folder
    raise ReplayError(
        f"{path}: not a replay bundle (no {MANIFEST}, nor {IN_WORKDIR}/{MANIFEST} as in a "
        f"hunt workdir); hunt writes one in WORKDIR/{IN_WORKDIR} when its training fails"
    )


def open_bundle(folder: str) -> Bundle:
    """Read and check the bundle in ``folder``: its manifest, net, inputs and weights.

    Raises:
        ReplayError: a file missing, unreadable or not what the manifest says; a file named
            outside the folder; inputs that are not the net's Input tops or not of their shapes;
            weights that are not a caffemodel.
        NanToolsError: a net that does not parse (with its position).
    """
    manifest_path = os.path.join(folder, MANIFEST)
    manifest = _manifest(manifest_path)
    net_path = _member(folder, manifest, "net")
    net_text = read_text(net_path, "net")
    net = Net.parse(net_text, net_path)
    weights_path = _member(folder, manifest, "weights")
    bundle = Bundle(
        folder,
        net_path,
        net_text,
        net,
        weights_path,
        _weights(weights_path),
        {},
        manifest.get("iteration"),
        _error(manifest_path, manifest.get("error")),
        manifest.get(SEALED),
    )
    if not isinstance(manifest["inputs"], dict) or not manifest["inputs"]:
        raise ReplayError(f"{manifest_path}: 'inputs' must map each data top to its .npy file")
    for top in manifest["inputs"]:
        bundle.input_paths.append(_member(folder, manifest["inputs"], top, "input"))
        bundle.inputs[top] = _array(bundle.input_paths[-1])
    _check_net(bundle)
    return bundle


def check_layer_types(bundle: Bundle, known: Collection[str]) -> None:
    """Caffe aborts on a layer type it does not have ("Unknown layer type")."""
    for layer in bundle.layers:
        if layer.type not in known:
            raise ReplayError(
                f"{bundle.net_path}:{layer.node.line}: layer {layer.name!r} has type {layer.type!r}, "
                "which this Caffe does not have"
            )


def check_python_layers(bundle: Bundle) -> None:
    """Each Python layer's module imports here and has its class: Caffe imports them while it
    sets up the net and fails with a SystemError that names neither. Imports the modules, from
    ``sys.path`` as Caffe would, so it runs in the process Caffe will."""
    for layer in bundle.layers:
        if layer.type != "Python":
            continue
        block = layer.node.find("python_param")
        module = block.field("module", STRING) if block is not None else None
        name = block.field("layer", STRING) if block is not None else None
        where = f"{bundle.net_path}:{layer.node.line}: Python layer {layer.name!r}"
        if not module or not name:
            raise ReplayError(f"{where} names no module and class (python_param.module and .layer)")
        try:
            loaded = importlib.import_module(module)
        except Exception as e:  # the module's own code may raise anything while it loads
            missing = isinstance(e, ModuleNotFoundError) and f"{module}.".startswith(f"{e.name}.")
            raise ReplayError(
                f"{where}: module {module!r} is not found here; put the folder that holds it on "
                f"PYTHONPATH (or the module in {bundle.folder})"
                if missing
                else f"{where}: importing module {module!r} failed ({type(e).__name__}: {e})"
            ) from None
        if not isinstance(getattr(loaded, name, None), type):
            raise ReplayError(
                f"{where}: module {module!r} ({getattr(loaded, '__file__', None) or 'built in'}) "
                f"has no class {name!r} (python_param.layer)"
            )


def seal(folder: str) -> None:
    """Record in the manifest of the bundle in ``folder`` a digest of each file it names, as
    they are now (hunt, once it has written them all)."""
    manifest_path = os.path.join(folder, MANIFEST)
    manifest = _manifest(manifest_path)
    names = [manifest["net"], manifest["weights"], *manifest["inputs"].values()]
    manifest[SEALED] = {name: _digest(os.path.join(folder, name)) for name in names}
    write_text(manifest_path, json.dumps(manifest, indent=2) + "\n")


def changed_since_hunt(bundle: Bundle) -> Optional[str]:
    """None when the bundle's files are as hunt wrote them (its digests match); else what is
    not (a file changed, or no digests: an older hunt's bundle or one made by hand)."""
    sealed = bundle.sealed
    if not isinstance(sealed, dict) or not sealed:
        return f"its manifest has no {SEALED} digests of the files hunt wrote"
    for path in [bundle.net_path, bundle.weights_path, *bundle.input_paths]:
        name = os.path.basename(path)
        if sealed.get(name) != _digest(path):
            return f"{name} is not the file hunt wrote"
    return None


def _digest(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def copy_weights(bundle: Bundle, params: Dict[str, list]) -> None:
    """Put the bundle's weights into the net's ``params`` (pycaffe's ``net.params``), after
    checking that the file holds every one of them in its shape: a layer Caffe found no weights
    for would keep its fillers' values, and one of another shape ends Caffe."""
    where = bundle.weights_path
    if params and not any(name in bundle.weights for name in params):
        raise ReplayError(
            f"{where}: holds none of the net's params (layers {', '.join(params)}); "
            "these are not the weights of this net"
        )
    for name, blobs in params.items():
        saved = bundle.weights.get(name)
        if saved is None:
            raise ReplayError(f"{where}: holds no params for layer {name!r}")
        if len(saved) != len(blobs):
            raise ReplayError(
                f"{where}: layer {name!r} has {len(saved)} params here, {len(blobs)} in the net"
            )
        for i, (param, blob) in enumerate(zip(saved, blobs)):
            if not param.fits(blob.data.shape):
                raise ReplayError(
                    f"{where}: layer {name!r} param {i}: {param.described()}, the net's is "
                    f"shape {_shape(blob.data.shape)}"
                )
    for name, blobs in params.items():
        for param, blob in zip(bundle.weights[name], blobs):
            blob.data[...] = param.values.reshape(blob.data.shape)


def _manifest(path: str) -> dict:
    try:
        manifest = json.loads(read_text(path, "manifest"))
    except ValueError as e:
        raise ReplayError(f"{path}: not JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise ReplayError(f"{path}: not a manifest (a JSON object)")
    missing = [key for key in ("net", "weights", "inputs") if key not in manifest]
    if missing:
        raise ReplayError(f"{path}: the bundle is incomplete (no {', '.join(missing)})")
    iteration = manifest.get("iteration")
    if iteration is not None and (
        not isinstance(iteration, numbers.Integral) or isinstance(iteration, bool)
    ):
        raise ReplayError(f"{path}: 'iteration' must be an integer, got {repr(iteration)}")
    return manifest


def _member(folder: str, names: dict, key: str, what: Optional[str] = None) -> str:
    """The path of the file ``names[key]`` names, which must be a file of the bundle's own."""
    name = names[key]
    what = f"{what} {key!r}" if what else repr(key)
    manifest = os.path.join(folder, MANIFEST)
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or os.path.basename(name) != name
        or os.path.dirname(os.path.realpath(os.path.join(folder, name))) != os.path.realpath(folder)
    ):
        raise ReplayError(
            f"{manifest}: {what} is {name!r}, not a file of the bundle; a bundle names its own "
            "files by their names in its folder"
        )
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        raise ReplayError(f"{manifest}: the bundle is incomplete ({name} is missing)")
    return path


def _read_bytes(path: str, what: str) -> bytes:
    check_input(path, what)
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as e:
        raise ReplayError(f"{path}: cannot read ({e.strerror or e})") from None


def _weights(path: str) -> Dict[str, List[Param]]:
    buf = _read_bytes(path, "caffemodel")
    if not buf:
        raise ReplayError(f"{path}: an empty file, not the weights of a net")
    try:
        return read_params(buf)
    except NotACaffemodel as e:
        raise ReplayError(
            f"{path}: not a binary caffemodel ({e}); cut short, or another kind of file"
        ) from None


def _array(path: str) -> np.ndarray:
    check_input(path, ".npy file")
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        raise ReplayError(f"{path}: not a .npy array ({e})") from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        raise ReplayError(f"{path}: not an array of numbers ({array.dtype})")
    return array


def _error(path: str, record: object) -> Optional[NonFiniteError]:
    if record is None:
        return None
    try:
        return NonFiniteError.from_dict(record)
    except (KeyError, TypeError, ValueError, AttributeError) as e:
        raise ReplayError(
            f"{path}: the bundle is incomplete (its 'error' record: {type(e).__name__} {e})"
        ) from None


def _shape(dims) -> str:
    return "(" + ", ".join(str(d) for d in dims) + ")"


def _check_net(bundle: Bundle) -> None:
    """The inputs are exactly the tops of the net's Input layers, each of its declared shape,
    and every layer reads blobs made before it ("Unknown bottom blob" ends Caffe)."""
    declared: Dict[str, Tuple[int, ...]] = {}
    made = set(bundle.net.inputs)
    for layer in bundle.layers:
        for bottom in layer.bottoms:
            if bottom not in made:
                raise ReplayError(
                    f"{bundle.net_path}:{layer.node.line}: layer {layer.name!r} reads {bottom!r}, "
                    "which no layer before it makes"
                )
        made.update(layer.tops)
        if layer.type == "Input":
            declared.update(_input_shapes(bundle.net_path, layer))
    for top, array in bundle.inputs.items():
        if top not in declared:
            raise ReplayError(
                f"{os.path.join(bundle.folder, MANIFEST)}: input {top!r} is not a top of the net's "
                f"Input layers ({', '.join(declared) or 'none'})"
            )
        if array.shape != declared[top]:
            raise ReplayError(
                f"{bundle.folder}: the input of {top!r} has shape {_shape(array.shape)}, the net's "
                f"Input layer {_shape(declared[top])}"
            )
    missing = [top for top in declared if top not in bundle.inputs]
    if missing:
        raise ReplayError(
            f"{os.path.join(bundle.folder, MANIFEST)}: no input for the net's Input tops "
            f"{', '.join(missing)} (they would be zeros)"
        )


def _input_shapes(path: str, layer: Layer) -> Dict[str, Tuple[int, ...]]:
    block = layer.node.find("input_param")
    shapes = (
        [tuple(s.fields("dim", INT64)) for s in block.find_all("shape")]
        if block is not None
        else []
    )
    # Caffe's InputLayer: one shape for every top, or one per top.
    if len(shapes) == 1:
        shapes *= len(layer.tops)
    if len(shapes) != len(layer.tops):
        raise ReplayError(
            f"{path}:{layer.node.line}: Input layer {layer.name!r} has {len(layer.tops)} tops and "
            f"{len(shapes)} shapes (one, or one per top)"
        )
    return dict(zip(layer.tops, shapes))
