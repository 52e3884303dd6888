"""TLS: a scheduler and workers that speak only TLS on loopback; our command line and the
estimators fit through them with the certificates, a client without them is refused."""

import json

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
