"""TLS: a scheduler and workers that speak only TLS on loopback; our command line and the
estimators fit through them with the certificates, a client without them is refused."""

import json
import time

import dask.array as da
import numpy as np
import pytest

from dask_biglearn import GaussianMixture
from dask_biglearn.cli import main

pytest.importorskip("cryptography")


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory):
    from distributed import LocalCluster, Security

    security = Security.temporary()  # a fresh CA and certificate, encryption required
    folder = tmp_path_factory.mktemp("tls")
    files = {}
    for name, pem in [("ca", security.tls_ca_file), ("cert", security.tls_client_cert),
                      ("key", security.tls_client_key)]:
        files[name] = folder / f"{name}.pem"
        files[name].write_text(pem)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, protocol="tls://",
                      security=security, dashboard_address=None,
                      worker_dashboard_address=None) as cluster:
        yield cluster, security, files


def test_the_estimators_fit_through_a_tls_scheduler(tls_cluster):
    from distributed import Client

    cluster, security, _ = tls_cluster
    assert cluster.scheduler_address.startswith("tls://")
    X = np.random.default_rng(0).normal(size=(4000, 2))
    with Client(cluster.scheduler_address, security=security):
        on_cluster = GaussianMixture(2, random_state=0).fit(da.from_array(X, chunks=1000))
    in_memory = GaussianMixture(2, random_state=0).fit(X)
    np.testing.assert_allclose(on_cluster.means_, in_memory.means_, atol=1e-10)


def test_the_command_line_takes_tls_options_and_a_client_without_them_is_refused(
        tls_cluster, tmp_path, capsys):
    from distributed import Client

    cluster, _, files = tls_cluster
    tls = ["--scheduler", cluster.scheduler_address, "--tls-ca-file", str(files["ca"]),
           "--tls-cert", str(files["cert"]), "--tls-key", str(files["key"])]
    store = tmp_path / "d.zarr"
    assert main(["make-data", str(store), "--n-samples", "5000", "--n-features", "2",
                 "--n-components", "2", "--chunk-rows", "1000", "--quiet", *tls]) == 0
    assert main(["fit", str(store), "--n-components", "2", "--method", "em",
                 "--model", str(tmp_path / "m.dbl"), "--json", *tls]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["n_samples"] == 5000
    with pytest.raises(Exception):
        Client(cluster.scheduler_address, timeout=3, set_as_default=False)
    code = main(["fit", str(store), "--n-components", "2", "--model",
                 str(tmp_path / "no.dbl"), "--scheduler", cluster.scheduler_address,
                 "--connect-timeout", "3"])
    assert code == 1 and "cannot reach" in capsys.readouterr().err
    assert not (tmp_path / "no.dbl").exists()


@pytest.fixture
def plain_listener():
    """A plain TCP server on loopback that records every connection and what it was sent."""
    import socket
    import threading

    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(0.1)
    received, stop = [], threading.Event()

    def serve():
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(1.0)
                try:
                    received.append(conn.recv(1 << 16))
                except OSError:
                    received.append(b"")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], received
    stop.set()
    thread.join()
    server.close()


def _tls_config(files, **extra):
    return {"distributed.comm.tls.ca-file": str(files["ca"]),
            "distributed.comm.tls.client.cert": str(files["cert"]),
            "distributed.comm.tls.client.key": str(files["key"]), **extra}


def test_tls_from_dask_configuration_works_as_the_options_do(tls_cluster, tmp_path, capsys):
    """Dask's TLS configuration alone fits through the TLS scheduler; it requires encryption,
    as the options do: the same scheduler's address as tcp:// (or with no scheme) is refused
    with one line naming tls://."""
    import dask.config

    cluster, _, files = tls_cluster
    store = tmp_path / "d.zarr"
    da.from_array(np.random.default_rng(0).normal(size=(3000, 2)), chunks=1000).to_zarr(
        str(store), component="X")
    fit = ["fit", str(store), "--n-components", "2", "--method", "em", "--connect-timeout", "5"]
    host_port = cluster.scheduler_address.removeprefix("tls://")
    with dask.config.set(_tls_config(files)):
        assert main([*fit, "--model", str(tmp_path / "m.dbl"), "--json",
                     "--scheduler", cluster.scheduler_address]) == 0
        assert json.loads(capsys.readouterr().out.splitlines()[-1])["n_samples"] == 3000
        for address in (f"tcp://{host_port}", host_port):
            assert main([*fit, "--model", str(tmp_path / "no.dbl"), "--scheduler", address]) == 1
            err = capsys.readouterr().err.strip()
            assert len(err.splitlines()) == 1 and f"give tls://{host_port}" in err, err
            assert "distributed.comm.tls.client.cert" in err and "plain text" in err
    tls = ["--tls-ca-file", str(files["ca"]), "--tls-cert", str(files["cert"]), "--tls-key",
           str(files["key"])]
    assert main([*fit, "--model", str(tmp_path / "no.dbl"), "--scheduler",
                 f"tcp://{host_port}", *tls]) == 1
    assert "--tls-ca-file/--tls-cert/--tls-key" in capsys.readouterr().err
    assert not (tmp_path / "no.dbl").exists()


@pytest.mark.parametrize("config", ["client files", "require-encryption"])
def test_tls_from_dask_configuration_never_talks_plain_text(tls_cluster, plain_listener,
                                                              tmp_path, capsys, config):
    """Before, the client spoke Dask's protocol in plain text to a tcp:// address although
    the configuration named its TLS files: the listener received the handshake."""
    import dask.config

    _, _, files = tls_cluster
    port, received = plain_listener
    store = tmp_path / "d.zarr"
    da.from_array(np.ones((100, 2)), chunks=50).to_zarr(str(store), component="X")
    settings = (_tls_config(files) if config == "client files"
                else {"distributed.comm.require-encryption": True})
    with dask.config.set(settings):
        code = main(["fit", str(store), "--n-components", "2", "--model",
                     str(tmp_path / "m.dbl"), "--scheduler", f"tcp://127.0.0.1:{port}",
                     "--connect-timeout", "3"])
    err = capsys.readouterr().err
    time.sleep(0.5)
    assert received == [], received
    assert code == 1 and len(err.strip().splitlines()) == 1 and "plain text" in err, err
