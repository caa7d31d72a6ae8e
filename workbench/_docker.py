"""The one place the ``docker`` package is imported.

Everything else gets a client from :func:`get_client` and calls the helpers below, which
turn the SDK's exceptions into workbench errors that say what to do. The SDK is optional
(``pip install 'mlops-workbench[docker]'``) and imported only when a command needs Docker.
"""
from __future__ import annotations

import io
import os
import tarfile
from collections import deque
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from workbench.errors import DockerError, ImageBuildFailed, ImageNotFound, MissingDependency
from workbench.progress import Progress

LOG_TAIL_LINES = 25


def _sdk() -> Any:
    try:
        import docker
    except ImportError:
        raise MissingDependency("docker", "docker") from None
    return docker


def get_client(timeout: float = 120) -> Any:
    """A ``docker.DockerClient`` for the engine ``DOCKER_HOST`` (or the default socket) names.

    Raises:
        MissingDependency: the docker SDK is not installed.
        DockerError: no engine answers.
    """
    docker = _sdk()
    where = os.environ.get("DOCKER_HOST") or "the default socket (unix:///var/run/docker.sock)"
    try:
        client = docker.from_env(timeout=int(timeout))
        client.ping()
    except docker.errors.DockerException as exc:
        raise DockerError(
            f"cannot reach the Docker engine at {where} ({_first_line(exc)}); start Docker "
            "and set DOCKER_HOST if it listens elsewhere"
        ) from None
    return client


def get_image(client: Any, ref: str, hint: str = "") -> Any:
    """The image ``ref`` on the engine.

    Raises:
        ImageNotFound: it is not there (``hint`` says how to build it).
    """
    docker = _sdk()
    try:
        return client.images.get(ref)
    except docker.errors.ImageNotFound:
        raise ImageNotFound(f"image {ref} is not on the Docker engine{'; ' + hint if hint else ''}") from None
    except docker.errors.APIError as exc:
        raise DockerError(f"cannot inspect image {ref}: {_first_line(exc)}") from None


def ensure_image(client: Any, ref: str, *, what: str = "image", hint: str = "",
                 progress: Progress = lambda _: None) -> Any:
    """The image ``ref``, pulled first (with progress lines) when the engine lacks it.

    Args:
        what: how the error names the image (``base image``).
        hint: the end of the error line: what to do instead.

    Raises:
        ImageNotFound: it is not there and cannot be pulled (one line, ending in ``hint``).
        DockerError: the engine refused to inspect it.
    """
    image = find_image(client, ref)
    if image is not None:
        return image
    progress(f"{what} {ref} is not on the Docker engine; pulling it")
    try:
        pull_image(client, ref, progress)
        return get_image(client, ref)
    except DockerError as exc:
        raise ImageNotFound(
            f"{what} {ref} is not on the Docker engine and cannot be pulled ({exc})"
            f"{'; ' + hint if hint else ''}") from None


def pull_image(client: Any, ref: str, progress: Progress = lambda _: None) -> None:
    """Pull ``ref`` from its registry, one progress line per layer and state change (the
    engine's byte counts would be hundreds of lines).

    Raises:
        DockerError: the pull failed (the engine's reason, one line).
    """
    docker = _sdk()
    repository, tag = docker.utils.parse_repository_tag(ref)
    seen: dict[str, str] = {}
    try:
        for chunk in client.api.pull(repository, tag=tag or "latest", stream=True, decode=True):
            if "error" in chunk or "errorDetail" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                raise DockerError(_first_line(Exception(message or "pull failed")))
            status, layer = chunk.get("status", ""), chunk.get("id", "")
            if status and seen.get(layer) != status:
                seen[layer] = status
                progress(f"  {layer + ': ' if layer else ''}{status}")
    except docker.errors.DockerException as exc:
        raise DockerError(_first_line(exc)) from None
    except OSError as exc:  # the stream broke off
        raise DockerError(_first_line(exc)) from None


def find_image(client: Any, ref: str) -> Any | None:
    """The image ``ref``, or None when the engine does not have it."""
    try:
        return get_image(client, ref)
    except ImageNotFound:
        return None


def build_image(
    client: Any,
    context: Path,
    tag: str,
    *,
    target: str | None = None,
    buildargs: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    network_mode: str | None = "host",
    progress: Progress = lambda _: None,
) -> Any:
    """Build ``context/Dockerfile`` (its stage ``target``, default the last) as ``tag``,
    streaming the build output to ``progress``.

    The low-level API is used because it streams; ``images.build`` returns only at the end.
    Host networking lets ``RUN apt-get`` steps reach a mirror on machines where the default
    bridge cannot; pip never needs the network (wheels come from the context).

    Raises:
        ImageBuildFailed: a step failed; the error carries the log's last lines.
    """
    docker = _sdk()
    tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
    image_id = None
    try:
        stream = client.api.build(
            path=str(context), tag=tag, target=target, buildargs=dict(buildargs or {}),
            labels=dict(labels or {}),
            network_mode=network_mode, rm=True, forcerm=True, pull=False, decode=True,
        )
        for chunk in stream:
            for line in _lines(chunk):
                tail.append(line)
                progress(line)
            if "errorDetail" in chunk or "error" in chunk:
                message = chunk.get("error") or chunk["errorDetail"].get("message", "")
                raise ImageBuildFailed(f"building {tag} failed: {message.strip()}", tag, "\n".join(tail))
            if isinstance(chunk.get("aux"), dict) and chunk["aux"].get("ID"):
                image_id = chunk["aux"]["ID"]
    except docker.errors.APIError as exc:
        raise ImageBuildFailed(f"building {tag} failed: {_first_line(exc)}", tag, "\n".join(tail)) from None
    return client.images.get(image_id or tag)


def _lines(chunk: Mapping[str, Any]) -> Iterator[str]:
    text = chunk.get("stream") or ""
    if chunk.get("status"):
        text = f"{chunk['status']} {chunk.get('progress', '')}"
    for line in text.splitlines():
        if line.strip():
            yield line.rstrip()


@contextmanager
def api_errors(action: str) -> Iterator[None]:
    """Turn the SDK's errors inside the block into a DockerError naming ``action``."""
    docker = _sdk()
    try:
        yield
    except docker.errors.ImageNotFound as exc:
        raise ImageNotFound(f"cannot {action}: {_first_line(exc)}") from None
    except docker.errors.DockerException as exc:
        raise DockerError(f"cannot {action}: {_first_line(exc)}") from None


def run_output(client: Any, image: str, command: list[str], **options: Any) -> str:
    """Run ``command`` in a throwaway container of ``image``; its output. ``options`` go to
    ``containers.run`` (the container has no network unless they give it one).

    Raises:
        DockerError: the container could not run or the command failed.
    """
    options.setdefault("network_disabled", "network" not in options and "network_mode" not in options)
    with api_errors(f"run {' '.join(command)} in {image}"):
        output = client.containers.run(image, command, remove=True, **options)
    return output.decode("utf-8", "replace")


def copy_from_container(container: Any, path: str, destination: Path) -> bool:
    """Copy the file ``path`` out of ``container`` (running or stopped) to ``destination``.

    Returns:
        False when the container has no such file.
    """
    docker = _sdk()
    try:
        chunks, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return False
    buffer = io.BytesIO(b"".join(chunks))
    with tarfile.open(fileobj=buffer) as archive:
        member = next((m for m in archive.getmembers() if m.isfile()), None)
        if member is None:
            return False
        source = archive.extractfile(member)
        assert source is not None  # a regular file always has content
        destination.parent.mkdir(parents=True, exist_ok=True)
        destination.write_bytes(source.read())
    return True


def wait(container: Any, timeout: float | None) -> int | None:
    """Wait for ``container`` to exit; its exit status, or None past ``timeout`` seconds."""
    import requests

    try:
        result = container.wait(timeout=timeout) if timeout else container.wait()
    except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectionError):
        return None
    return int(result.get("StatusCode", 1))


def remove(container: Any) -> None:
    """Stop (if needed) and remove ``container``; a container already gone is fine."""
    docker = _sdk()
    try:
        container.remove(force=True, v=True)  # with its anonymous volumes
    except docker.errors.NotFound:
        pass


def network_options(tracking_uri: str, network: str = "") -> dict[str, str]:
    """``containers.run`` options that let a container reach the tracking server.

    The embedded server listens on the host's loopback, which only the host's network
    reaches; a compose platform's server is reached on the platform's network.
    """
    from urllib.parse import urlparse

    if network:
        return {"network": network}
    host = urlparse(tracking_uri).hostname or ""
    return {"network_mode": "host"} if host in {"127.0.0.1", "localhost", "::1"} else {}


def _first_line(exc: BaseException) -> str:
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip().splitlines()
    return text[0] if text else exc.__class__.__name__
