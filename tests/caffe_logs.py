"""Caffe logs written by hand, in the layout Caffe 1.0 prints (checked against real logs in the
image): a small net data -> conv1 -> relu1 (in place) -> ip1 -> loss, with debug_info."""

from typing import Dict, Optional, Tuple

#: (layer, top) in forward order; conv1 and ip1 have params.
TOPS = [("data", "data"), ("conv1", "conv1"), ("relu1", "conv1"), ("ip1", "ip1"), ("loss", "loss")]
#: (layer, bottom) in backward order, as Caffe prints them (the data layer needs no diff).
BOTTOMS = [("loss", "ip1"), ("ip1", "conv1"), ("relu1", "conv1")]
PARAMS = ("conv1", "ip1")


class CaffeLog:
    """Lines of a glog-format Caffe log, built up in order."""

    def __init__(self, crlf: bool = False) -> None:
        self.lines = []
        self.crlf = crlf

    def glog(self, message: str, level: str = "I", source: str = "solver.cpp:239") -> "CaffeLog":
        micros = len(self.lines) % 1000000
        self.lines.append(f"{level}1121 07:12:32.{micros:06d} 10203 {source}] {message}")
        return self

    def raw(self, text: str) -> "CaffeLog":
        self.lines.append(text)
        return self

    def solving(self, name: str = "small") -> "CaffeLog":
        return self.glog(f"Solving {name}", source="solver.cpp:289")

    def forward(self, layer: str, top: str, value, params=()) -> "CaffeLog":
        self.glog(
            f"    [Forward] Layer {layer}, top blob {top} data: {value}", source="net.cpp:593"
        )
        for i, p in enumerate(params):
            self.glog(
                f"    [Forward] Layer {layer}, param blob {i} data: {p}", source="net.cpp:605"
            )
        return self

    def backward(self, layer: str, bottom: Optional[str], value, params=()) -> "CaffeLog":
        if bottom is not None:
            self.glog(
                f"    [Backward] Layer {layer}, bottom blob {bottom} diff: {value}",
                source="net.cpp:621",
            )
        for i, p in enumerate(params):
            self.glog(
                f"    [Backward] Layer {layer}, param blob {i} diff: {p}", source="net.cpp:632"
            )
        return self

    def norms(self, data="62.5", diff="220.2") -> "CaffeLog":
        return self.glog(
            f"    [Backward] All net params (data, diff): L1 norm = ({data}, {diff}); "
            f"L2 norm = ({data}, {diff})",
            level="E",
            source="net.cpp:721",
        )

    def loss(self, iteration: int, value, old_style: bool = False) -> "CaffeLog":
        speed = "" if old_style else " (12.5 iter/s, 0.08s/1 iters)"
        self.glog(f"Iteration {iteration}{speed}, loss = {value}")
        return self.glog(
            f"    Train net output #0: loss = {value} (* 1 = {value} loss)", source="solver.cpp:258"
        )

    def lr(self, iteration: int, value) -> "CaffeLog":
        return self.glog(f"Iteration {iteration}, lr = {value}", source="sgd_solver.cpp:112")

    def trace(
        self,
        scale: float = 1.0,
        set: Optional[Dict[Tuple[str, str], str]] = None,
        crash_after: Optional[Tuple[str, str]] = None,
    ) -> "CaffeLog":
        """One iteration's forward and backward lines; ``set`` replaces values by (pass, layer)
        (``("param", layer)`` for a layer's first param data); ``crash_after`` stops there."""
        set = set or {}
        for layer, top in TOPS:
            params = ()
            if layer in PARAMS:
                params = (set.get(("param", layer), f"{0.25 * scale:g}"), "0.01")
            self.forward(layer, top, set.get(("forward", layer), f"{0.5 * scale:g}"), params)
            if crash_after == ("forward", layer):
                return self
        for layer, bottom in BOTTOMS:
            params = (f"{0.1 * scale:g}", "0.2") if layer in PARAMS else ()
            self.backward(layer, bottom, set.get(("backward", layer), f"{0.004 * scale:g}"), params)
        self.backward(
            "conv1", None, None, (set.get(("backward", "conv1"), f"{0.1 * scale:g}"), "0.3")
        )
        return self.norms(
            set.get(("norms", "data"), f"{62.5 * scale:g}"),
            set.get(("norms", "diff"), f"{9.0 * scale:g}"),
        )

    def iteration(self, i: int, loss="1.4", lr="0.01", **trace) -> "CaffeLog":
        """A whole displayed iteration: trace, loss line, output, rate."""
        return self.trace(**trace).loss(i, loss).lr(i, lr)

    def testing(self, iteration: int, data_value="0.7", loss="1.2") -> "CaffeLog":
        self.glog(f"Iteration {iteration}, Testing net (#0)", source="solver.cpp:347")
        self.forward("data", "data", data_value).forward("ip1", "ip1", "0.4").forward(
            "loss", "loss", loss
        )
        return self.glog(
            f"    Test net output #0: loss = {loss} (* 1 = {loss} loss)", source="solver.cpp:414"
        )

    def text(self) -> str:
        end = "\r\n" if self.crlf else "\n"
        return end.join(self.lines) + end

    def write(self, path) -> str:
        with open(path, "w", newline="") as f:
            f.write(self.text())
        return str(path)

    def line_of(self, fragment: str) -> int:
        """The 1-based number of the first line containing ``fragment``."""
        return next(i for i, line in enumerate(self.lines, 1) if fragment in line)
