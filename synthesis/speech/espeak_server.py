"""A small espeak-ng process that answers every request from a fresh copy of its start-up state.

espeak-ng keeps state between utterances (the pitch-flutter phase, the wave phase, the echo buffer
all carry over), so the same word said twice in one process comes out with different samples; and
its noise generator is seeded differently in every process. This process initialises the library
once and never synthesises itself: for each request it forks, and the child fixes the noise seed,
answers from the pristine initialised state and exits. Same request, same bytes, whatever was said
before, in any process.

It is run as a script (``python -I -S espeak_server.py LIBRARY DATA``) by
:mod:`hcgym.synthesis.speech.espeak` and uses the standard library only.

Protocol: one JSON request per line on stdin; each answer on stdout is an 8-byte header (status
uint32: 0 = ok, 1 = error; payload length uint32, little endian) followed by the payload: raw int16
samples for ``synth``, UTF-8 JSON for ``voices`` and ``info``, a UTF-8 message for errors.
"""

from __future__ import annotations

import ctypes
import json
import os
import struct
import sys

AUDIO_OUTPUT_SYNCHRONOUS = 2
ESPEAK_CHARS_UTF8 = 1
POS_CHARACTER = 1
RAND_SEED = 1
PARAMETERS = {"rate": 1, "volume": 2, "pitch": 3, "range": 4}  # espeak_PARAMETER values (speak_lib.h)

CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


class Voice(ctypes.Structure):
    """``espeak_VOICE`` of speak_lib.h."""

    _fields_ = [
        ("name", ctypes.c_char_p),
        ("languages", ctypes.c_void_p),
        ("identifier", ctypes.c_char_p),
        ("gender", ctypes.c_ubyte),
        ("age", ctypes.c_ubyte),
        ("variant", ctypes.c_ubyte),
        ("xx1", ctypes.c_ubyte),
        ("score", ctypes.c_int),
        ("spare", ctypes.c_void_p),
    ]


def load(library: str, data: str) -> tuple[ctypes.CDLL, int, list]:
    """Open and initialise the library; return it, its sample rate (Hz) and the sample sink."""
    lib = ctypes.CDLL(library)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                 ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
    lib.espeak_ListVoices.argtypes = [ctypes.POINTER(Voice)]
    lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(Voice))
    lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
    rate = lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, data.encode(), 0)
    if rate <= 0:
        raise RuntimeError(f"espeak_Initialize failed with data path {data}")
    sink: list = []

    def collect(wav, count, events):  # called by espeak_Synth for every buffer of 16-bit samples
        if wav and count > 0:
            sink.append(ctypes.string_at(wav, 2 * count))
        return 0

    sink.append(CALLBACK(collect))  # sink[0] keeps the callback alive
    lib.espeak_SetSynthCallback(sink[0])
    return lib, rate, sink


def list_voices(lib: ctypes.CDLL, spec: bytes | None) -> list[dict]:
    """The voices (``spec=None``) or the variants (``spec=b"variant"``) the data directory holds."""
    query, language = None, ctypes.create_string_buffer(spec or b"")
    if spec is not None:
        query = ctypes.pointer(Voice())
        query.contents.languages = ctypes.cast(language, ctypes.c_void_p)
    table = lib.espeak_ListVoices(query)
    out = []
    for i in range(10_000):
        if not table[i]:
            break
        voice = table[i].contents
        languages, raw = [], ctypes.cast(voice.languages, ctypes.POINTER(ctypes.c_ubyte))
        pos = 0
        while raw[pos] != 0:  # (priority byte, name, NUL)*, then a zero priority byte
            end = pos + 1
            while raw[end] != 0:
                end += 1
            languages.append(bytes(raw[pos + 1:end]).decode("utf-8", "replace"))
            pos = end + 1
        out.append({"name": voice.name.decode("utf-8", "replace"), "languages": languages,
                    "identifier": voice.identifier.decode("utf-8", "replace"), "gender": int(voice.gender)})
    return out


def synth(lib: ctypes.CDLL, sink: list, request: dict) -> bytes:
    """Say ``request["text"]`` with the request's voice and parameters; raw int16 samples."""
    # espeak-ng's own noise generator starts from a different seed in every process (the C library's
    # rand() may too): fix both, so that every helper process says a word the same way
    lib.espeak_ng_SetRandSeed(RAND_SEED)
    ctypes.CDLL(None).srand(RAND_SEED)
    status = lib.espeak_SetVoiceByName(request["voice"].encode())
    if status != 0:
        raise ValueError(f"espeak_SetVoiceByName({request['voice']!r}) returned {status}")
    for key, code in PARAMETERS.items():
        lib.espeak_SetParameter(code, int(request[key]), 0)
    text = request["text"].encode("utf-8")
    status = lib.espeak_Synth(text, len(text) + 1, 0, POS_CHARACTER, 0, ESPEAK_CHARS_UTF8, None, None)
    if status != 0:
        raise ValueError(f"espeak_Synth returned {status}")
    lib.espeak_Synchronize()
    return b"".join(sink[1:])


def answer_in_child(lib: ctypes.CDLL, rate: int, sink: list, request: dict) -> tuple[int, bytes]:
    """Run one request in a forked child (so this process's state never changes); (status, payload)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: answer, write "status byte + payload", exit without any clean-up
        os.close(read_fd)
        try:
            op = request.get("op")
            if op == "synth":
                payload = b"\0" + synth(lib, sink, request)
            elif op == "voices":
                found = {"voices": list_voices(lib, None), "variants": list_voices(lib, b"variant")}
                payload = b"\0" + json.dumps(found).encode()
            else:
                payload = b"\1" + f"unknown request {op!r}".encode()
        except Exception as error:  # noqa: BLE001 - reported to the client as an error answer
            payload = b"\1" + str(error).encode()
        view = memoryview(payload)
        while view:
            view = view[os.write(write_fd, view):]
        os._exit(0)
    os.close(write_fd)
    chunks = []
    while chunk := os.read(read_fd, 1 << 16):
        chunks.append(chunk)
    os.close(read_fd)
    _, code = os.waitpid(pid, 0)
    data = b"".join(chunks)
    if code != 0 or not data:
        return 1, f"espeak-ng child ended with wait status {code}".encode()
    return data[0], data[1:]


def serve(library: str, data: str) -> None:
    """Answer requests from stdin until it closes."""
    lib, rate, sink = load(library, data)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        request = json.loads(line)
        if request.get("op") == "info":
            status, payload = 0, json.dumps({"sample_rate": rate}).encode()
        else:
            status, payload = answer_in_child(lib, rate, sink, request)
        out.write(struct.pack("<II", status, len(payload)) + payload)
        out.flush()


if __name__ == "__main__":
    serve(sys.argv[1], sys.argv[2])
