"""A small static-file HTTP server on anyio that sends files with ``aos.sendfile``.

Each request opens the file with ``aos.open``, sizes it with ``aos.fstat`` and sends the body
with ``aos.sendfile`` straight from the file to the socket, so no file byte passes through
Python. GET and HEAD, one request per connection, ``index.html`` for directories.

    python examples/static_server.py ./public --port 8000 --loop trio
"""

from __future__ import annotations

import argparse
import errno
import mimetypes
import os
import posixpath
import stat
import urllib.parse

import anyio
from _loop import add_loop_option, run
from anyio.abc import Listener, SocketAttribute, SocketStream

import aos

MAX_HEAD = 16 * 1024
REASONS = {
    200: "OK",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
}


async def main(root: str = ".", host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve ``root`` on ``host:port`` until cancelled (Ctrl-C)."""
    listener = await anyio.create_tcp_listener(local_host=host, local_port=port)
    port = listener.extra(SocketAttribute.local_port)
    print(f"serving {root} on http://{host}:{port}/", flush=True)
    await serve(root, listener)


async def serve(root: str, listener: Listener[SocketStream]) -> None:
    """Answer every connection ``listener`` accepts with a file under ``root``."""
    root = await aos.path.abspath(root)  # abspath may call getcwd(): blocking
    if not mimetypes.inited:  # its first use reads the system's mime.types files: blocking
        await anyio.to_thread.run_sync(mimetypes.init)
    async with listener:
        await listener.serve(lambda stream: handle(root, stream))


async def handle(root: str, stream: SocketStream) -> None:
    """Read one request from ``stream``, answer it, close the connection."""
    async with stream:
        try:
            request = await _read_head(stream)
            await _answer(root, stream, request)
        except (anyio.BrokenResourceError, anyio.EndOfStream, ConnectionError):
            pass  # the client went away


async def _read_head(stream: SocketStream) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head and len(head) < MAX_HEAD:
        head += await stream.receive()
    return head


async def _answer(root: str, stream: SocketStream, head: bytes) -> None:
    try:
        method, target, _version = head.split(b"\r\n", 1)[0].decode("latin-1").split(" ")
    except ValueError:
        await _send_status(stream, 400)
        return
    if method not in ("GET", "HEAD"):
        await _send_status(stream, 405)
        return
    path = _local_path(root, target)
    if path is None:
        await _send_status(stream, 403)
        return
    try:
        fd, size, path = await _open_file(path)
    except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
        await _send_status(stream, 404)
        return
    except PermissionError:
        await _send_status(stream, 403)
        return
    try:
        content_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
        await stream.send(_head(200, size, content_type))
        if method == "GET":
            await _send_body(stream, fd, size)
    finally:
        with anyio.CancelScope(shield=True):
            await aos.close(fd)


def _local_path(root: str, target: str) -> str | None:
    """The file under ``root`` that the request target names, or ``None`` if it points outside."""
    url_path = urllib.parse.unquote(urllib.parse.urlsplit(target).path)
    clean = posixpath.normpath("/" + url_path).lstrip("/")
    path = os.path.join(root, clean)
    return path if os.path.commonpath([root, path]) == root else None


async def _open_file(path: str, index: bool = True) -> tuple[int, int, str]:
    """Open ``path`` (``index.html`` for a directory): the fd, its size and the path served."""
    fd = await aos.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = await aos.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            if not index:
                raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), path)
            await aos.close(fd)
            return await _open_file(os.path.join(path, "index.html"), index=False)
    except BaseException:
        with anyio.CancelScope(shield=True):
            await aos.close(fd)
        raise
    return fd, st.st_size, path


async def _send_body(stream: SocketStream, fd: int, size: int) -> None:
    """Send ``size`` bytes of ``fd`` with ``aos.sendfile``, waiting whenever the socket is full."""
    sock = stream.extra(SocketAttribute.raw_socket)
    offset = 0
    while offset < size:
        try:
            sent = await aos.sendfile(sock.fileno(), fd, offset, size - offset)
        except BlockingIOError:  # the socket is non-blocking: wait until it can take more
            await anyio.wait_writable(sock)
            continue
        if sent == 0:  # the file shrank while being sent
            break
        offset += sent


def _head(status: int, length: int, content_type: str) -> bytes:
    return (
        f"HTTP/1.1 {status} {REASONS[status]}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\n"
        "Connection: close\r\n\r\n"
    ).encode("latin-1")


async def _send_status(stream: SocketStream, status: int) -> None:
    body = f"{status} {REASONS[status]}\n".encode()
    await stream.send(_head(status, len(body), "text/plain; charset=utf-8") + body)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", nargs="?", default=".", help="the directory to serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    add_loop_option(parser)
    args = parser.parse_args()
    try:
        run(main, args.root, args.host, args.port, loop=args.loop)
    except* KeyboardInterrupt:  # bare, or from inside a task group
        pass
