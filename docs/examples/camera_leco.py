"""
Get camera frames from a twisted_lab actor with a plain pyleco Director.

    python docs/examples/camera_leco.py [actor] [port]

(default actor: lab.camera of `twistd -n lab`, Coordinator port 12300).
Needs pyleco and numpy.  The binary way moves the image as one additional
payload frame: no JSON text of the pixels on either side.
"""
from __future__ import annotations

import sys
import time

import numpy as np
from pyleco.directors.director import Director


def frame_binary(director: Director) -> np.ndarray:
    """The fast way: the image in an additional binary payload frame."""
    result, frames = director.ask_rpc("call_action_binary", action="grab",
                                      extract_additional_payload=True)
    ref = result["signals"][0]["data"][0]  # {"__array__": n, "dtype": "<u2", "shape": [h, w]}
    return np.frombuffer(frames[ref["__array__"]], dtype=ref["dtype"]).reshape(ref["shape"])


def frame_json(director: Director) -> np.ndarray:
    """The plain way: the whole export as JSON (nested lists)."""
    export = director.call_action("grab")
    return np.asarray(export["signals"][0]["data"][0])


def main() -> None:
    actor = sys.argv[1] if len(sys.argv) > 1 else "lab.camera"
    port = int(sys.argv[2]) if len(sys.argv) > 2 else 12300
    director = Director(actor=actor, name="camera_example", host="127.0.0.1", port=port,
                        timeout=30)
    try:
        for how in (frame_binary, frame_json):
            started = time.perf_counter()
            image = how(director)
            print(f"{how.__name__}: {image.shape} {image.dtype} in "
                  f"{time.perf_counter() - started:.3f} s, mean {image.mean():.1f}")
    finally:
        director.communicator.close()


if __name__ == "__main__":
    main()
