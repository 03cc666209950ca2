"""`inferplane extender`'s flags and start-up errors, before any server runs."""

from __future__ import annotations

from inferplane import cli, kube


def test_without_a_cluster_it_says_how_the_extender_finds_one(tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "absent"))
    monkeypatch.setattr(kube.k8s_config.kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "absent"))
    assert cli.main(["extender"]) == 2
    message = capsys.readouterr().err
    assert message.startswith("inferplane extender: cannot reach a cluster")
    assert message.rstrip().endswith(
        "run it in the cluster (the chart's scheduler pod) or pass --kubeconfig FILE"
    )
    assert "--catalog" not in message


def test_an_accelerator_pattern_that_matches_nothing_is_refused_before_connecting(monkeypatch, capsys):
    def no_cluster(*args: object, **kwargs: object) -> None:
        raise AssertionError("connected before checking the flags")

    monkeypatch.setattr(kube, "connect", no_cluster)
    assert (
        cli.main(
            ["extender", "--accelerator-resource", "xilinx.com/fpga-*", "--accelerator-resource", "fpga"]
        )
        == 2
    )
    assert "--accelerator-resource 'fpga': give an extended resource name" in capsys.readouterr().err


def test_the_metrics_port_must_differ_from_the_scheduler_port(capsys):
    assert cli.main(["extender", "--port", "8890", "--metrics-port", "8890"]) == 2
    assert "--metrics-port 8890: give a port other than --port" in capsys.readouterr().err
