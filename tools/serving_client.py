"""TF Serving client for an exported lgh_tf model: gRPC ``PredictRequest`` or REST ``:predict`` body.

The image (EXIF orientation applied) is cropped to the square about ``--box x,y,w,h`` with the
training margin, as ``--mode=predict`` does, or, without a box, to its centre square (a picture of
one hand), resized to the model's input size S (``lgh_tf.geometry``) and sent as uint8 RGB
(N, S, S, 3) to ``serving_default`` (or ``predict_xyz`` with ``--intrinsics``, ``--scale``,
``--root_depth``; the intrinsics must then describe the S x S crop).

    # the REST body for curl (see docs/deployment.md)
    python tools/serving_client.py hand.png --export_dir saved_models/lgh --rest > body.json
    curl -s -d @body.json http://localhost:8501/v1/models/lgh:predict
    # send it: REST or gRPC (needs `pip install tensorflow-serving-api==2.21.*`)
    python tools/serving_client.py hand.png --input_size 256 --rest_url http://localhost:8501
    python tools/serving_client.py hand.png --input_size 256 --grpc localhost:8500
    # no server: run the request against a local SavedModel version (what the test checks)
    python tools/serving_client.py hand.png --local saved_models/lgh/1

The request round-trips exactly: TensorProto -> numpy (``tf.make_ndarray``) gives the uint8 crop
that the signature's input spec expects.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

DEFAULT_MODEL_NAME = "lgh"
DEFAULT_SIGNATURE = "serving_default"


def load_crop(path, size, box=None) -> np.ndarray:
    """uint8 RGB (S, S, 3): the image file, as displayed, cropped to the square about ``box``
    (x, y, w, h; side 1.2 x max(w, h)) or to its centre square, resized to ``size``."""
    from lgh_tf import geometry
    from lgh_tf.predict import read_image

    rgb, _ = read_image(path)
    height, width = rgb.shape[:2]
    if box is None:
        centre, side = geometry.image_square(width, height)[0], min(width, height)
    else:
        centre, side = geometry.box_square(box)
    return geometry.render_crop(rgb, geometry.square_crop_matrix(centre, side, size), size)


def as_batch(images) -> np.ndarray:
    """(S, S, 3) or (N, S, S, 3) -> uint8 (N, S, S, 3)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    if images.dtype != np.uint8:
        raise TypeError(f"images must be uint8 RGB, got {images.dtype}")
    return images


def request_inputs(images, intrinsics=None, scale=None, root_depth=None) -> dict:
    """{input name: numpy array} for serving_default (images) or predict_xyz (all four)."""
    inputs = {"images": as_batch(images)}
    extra = (intrinsics, scale, root_depth)
    if any(x is not None for x in extra):
        if any(x is None for x in extra):
            raise ValueError("predict_xyz needs intrinsics, scale and root_depth together")
        n = inputs["images"].shape[0]
        inputs["intrinsics"] = np.asarray(intrinsics, np.float32).reshape(n, 3, 3)
        inputs["scale"] = np.asarray(scale, np.float32).reshape(n)
        inputs["root_depth"] = np.asarray(root_depth, np.float32).reshape(n)
    return inputs


def make_predict_request(inputs, model_name=DEFAULT_MODEL_NAME, signature_name=DEFAULT_SIGNATURE,
                         version=None, output_filter=None):
    """A ``tensorflow_serving.apis.predict_pb2.PredictRequest`` carrying ``inputs`` as TensorProtos.

    ``output_filter`` (e.g. ``["uv", "depth"]``) asks the server for those outputs only: the
    heatmaps are (N, S/4, S/4, 21) floats, 344 KB per 256x256 image (gRPC only; REST returns all).
    """
    import tensorflow as tf

    try:
        from tensorflow_serving.apis import predict_pb2
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "gRPC requests need tensorflow-serving-api: pip install 'tensorflow-serving-api==2.21.*' "
            "(the REST body, --rest, needs nothing extra)"
        ) from error
    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature_name
    if version is not None:
        request.model_spec.version.value = int(version)
    for name, value in inputs.items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    if output_filter:
        request.output_filter.extend(output_filter)
    return request


def request_to_numpy(request) -> dict:
    """{input name: numpy array} decoded from a PredictRequest (what the server does)."""
    import tensorflow as tf

    return {name: tf.make_ndarray(proto) for name, proto in request.inputs.items()}


def rest_body(inputs, signature_name=DEFAULT_SIGNATURE) -> dict:
    """The JSON body of ``POST /v1/models/<name>:predict`` (columnar "inputs" format)."""
    return {
        "signature_name": signature_name,
        "inputs": {name: value.tolist() for name, value in inputs.items()},
    }


def rest_body_to_numpy(body, input_specs) -> dict:
    """Decodes a REST body with the signature's input dtypes, as TF Serving does."""
    return {
        name: np.asarray(value, dtype=input_specs[name].dtype.as_numpy_dtype)
        for name, value in body["inputs"].items()
    }


def run_local(saved_model_dir, inputs, signature_name=DEFAULT_SIGNATURE) -> dict:
    """Runs ``inputs`` through a local SavedModel's signature; {output name: numpy array}."""
    import tensorflow as tf

    loaded = tf.saved_model.load(os.fspath(saved_model_dir))
    signature = loaded.signatures[signature_name]
    outputs = signature(**{name: tf.constant(value) for name, value in inputs.items()})
    return {name: value.numpy() for name, value in outputs.items()}


def post_rest(url, body, model_name=DEFAULT_MODEL_NAME, timeout=30.0) -> dict:
    import urllib.request

    endpoint = f"{url.rstrip('/')}/v1/models/{model_name}:predict"
    request = urllib.request.Request(
        endpoint, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        answer = json.loads(response.read())
    return {name: np.asarray(value) for name, value in answer["outputs"].items()}


def send_grpc(target, request, timeout=30.0) -> dict:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(target, options=[("grpc.max_send_message_length", 64 << 20),
                                                     ("grpc.max_receive_message_length", 64 << 20)])
    stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
    response = stub.Predict(request, timeout)
    return {name: tf.make_ndarray(proto) for name, proto in response.outputs.items()}


def _input_size(args) -> int:
    if args.input_size:
        return args.input_size
    directory = args.local or args.export_dir
    if not directory:
        raise SystemExit("give --input_size, --export_dir or --local (to read the model's input size)")
    info_path = os.path.join(directory, "export_info.json")
    if not os.path.exists(info_path):
        versions = sorted((int(v) for v in os.listdir(directory) if v.isdigit()), reverse=True)
        if not versions:
            raise SystemExit(f"no export_info.json in {directory} and no numbered versions below it")
        info_path = os.path.join(directory, str(versions[0]), "export_info.json")
    with open(info_path) as f:
        return int(json.load(f)["input_size"])


def _print_outputs(outputs):
    for name in ("uv", "depth", "xyz"):
        if name in outputs:
            value = np.asarray(outputs[name])
            print(f"{name} {value.shape}:")
            print(np.array2string(value[0], precision=3, suppress_small=True, max_line_width=120))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("image", help="image file (PNG/JPEG) of one hand")
    parser.add_argument("--box", default="", help="x,y,w,h around the hand (default: the centre square)")
    parser.add_argument("--input_size", type=int, default=0, help="model input size S (default: from export_info.json)")
    parser.add_argument("--export_dir", default="", help="TF Serving base directory (reads the input size)")
    parser.add_argument("--model_name", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--version", type=int, default=None, help="model version (default: the server's latest)")
    parser.add_argument("--intrinsics", default="", help="fx,fy,cx,cy of the S x S crop: use predict_xyz")
    parser.add_argument("--scale", type=float, default=None, help="predict_xyz: hand scale (output unit)")
    parser.add_argument("--root_depth", type=float, default=None, help="predict_xyz: root joint depth")
    parser.add_argument("--rest", action="store_true", help="print the REST :predict JSON body and exit")
    parser.add_argument("--rest_url", default="", help="POST to http://HOST:8501 and print the outputs")
    parser.add_argument("--grpc", default="", help="send a PredictRequest to HOST:8500 and print the outputs")
    parser.add_argument("--save_request", default="", help="write the serialized PredictRequest here")
    parser.add_argument("--outputs", default="uv,depth", help="gRPC output_filter ('' = all, with heatmaps)")
    parser.add_argument("--local", default="", help="run against this SavedModel version directory instead")
    args = parser.parse_args(argv)

    box = [float(v) for v in args.box.split(",")] if args.box else None
    if box is not None and len(box) != 4:
        parser.error("--box: expected x,y,w,h")
    try:
        crop = load_crop(args.image, _input_size(args), box)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    intrinsics = None
    if args.intrinsics:
        fx, fy, cx, cy = (float(x) for x in args.intrinsics.split(","))
        intrinsics = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1]], np.float32)
    inputs = request_inputs(crop, intrinsics, args.scale, args.root_depth)
    signature = "predict_xyz" if "intrinsics" in inputs else DEFAULT_SIGNATURE

    if args.rest:
        json.dump(rest_body(inputs, signature), sys.stdout)
        sys.stdout.write("\n")
        return 0
    if args.rest_url:
        _print_outputs(post_rest(args.rest_url, rest_body(inputs, signature), args.model_name))
        return 0
    request = None
    if args.grpc or args.save_request:
        outputs = [name for name in args.outputs.split(",") if name]
        if outputs and signature == "predict_xyz" and "xyz" not in outputs:
            outputs.append("xyz")
        request = make_predict_request(inputs, args.model_name, signature, args.version, outputs)
    if args.save_request:
        with open(args.save_request, "wb") as f:
            f.write(request.SerializeToString())
        print(f"wrote {args.save_request} ({request.ByteSize()} bytes)")
    if args.grpc:
        _print_outputs(send_grpc(args.grpc, request))
    if args.local:
        _print_outputs(run_local(args.local, inputs, signature))
    if not (args.grpc or args.save_request or args.local):
        parser.error("choose --rest, --rest_url, --grpc, --save_request or --local")
    return 0


if __name__ == "__main__":
    sys.exit(main())
