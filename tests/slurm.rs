//! A real Slurm: a one-node cluster started in a temporary folder (no systemd, no munge) runs
//! scripts/slurm/features.sbatch as a 4-task array on a slice of the flowers; one task is
//! cancelled mid-way and resubmitted, scripts/slurm/merge.sbatch merges, and the merged cache
//! must equal a single-machine run's. Fails, saying how to install it, where Slurm is not
//! installed (`scripts/setup-system.sh --test` installs it as root; `make test` runs it) or the
//! test does not run as root: a test that cannot run never reports "ok".

use crate::common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::contents::assert_same_cache;
use common::fixtures::{feature_bytes, flowers_slice, repo, tlearn, vgg16};
use tlearn::cache::{FeatureCache, RowStatus};

/// Longest wait for the cluster or a job before the test gives up (with the logs).
const PATIENCE: Duration = Duration::from_secs(600);

/// A one-node Slurm cluster; dropping it cancels its jobs and stops both daemons by PID.
struct Cluster {
    dir: PathBuf,
    conf: PathBuf,
    daemons: Vec<Child>,
}

impl Cluster {
    /// Writes slurm.conf under `dir` and starts slurmctld and slurmd in the foreground (-D).
    fn start(dir: &Path) -> Cluster {
        let dir = dir.to_path_buf();
        for sub in ["spool", "state", "log"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        let host = output(common::fixtures::command("hostname").arg("-s"));
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let port = || {
            TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        };
        let d = dir.display();
        let conf = dir.join("slurm.conf");
        std::fs::write(
            &conf,
            format!(
                "ClusterName=tlearn-test\nSlurmctldHost={host}\nSlurmUser=root\nSlurmdUser=root\n\
                 AuthType=auth/none\nCredType=cred/none\nProctrackType=proctrack/linuxproc\n\
                 TaskPlugin=task/none\nSelectType=select/cons_tres\nSelectTypeParameters=CR_CPU\n\
                 MpiDefault=none\nSlurmctldPort={}\nSlurmdPort={}\n\
                 SlurmdSpoolDir={d}/spool\nStateSaveLocation={d}/state\n\
                 SlurmctldPidFile={d}/slurmctld.pid\nSlurmdPidFile={d}/slurmd.pid\n\
                 SlurmctldLogFile={d}/log/slurmctld.log\nSlurmdLogFile={d}/log/slurmd.log\n\
                 ReturnToService=2\nAccountingStorageType=accounting_storage/none\n\
                 JobAcctGatherType=jobacct_gather/none\nJobCompType=jobcomp/none\n\
                 NodeName={host} CPUs={cpus} State=UNKNOWN\n\
                 PartitionName=test Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n",
                port(),
                port()
            ),
        )
        .unwrap();
        let mut cluster = Cluster {
            dir,
            conf,
            daemons: Vec::new(),
        };
        for daemon in ["slurmctld", "slurmd"] {
            let log = std::fs::File::create(cluster.dir.join(format!("log/{daemon}.out"))).unwrap();
            let child = common::fixtures::command(daemon)
                .arg("-D")
                .arg("-f")
                .arg(&cluster.conf)
                .env("SLURM_CONF", &cluster.conf)
                .stdin(Stdio::null())
                .stdout(log.try_clone().unwrap())
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("starting {daemon}: {e}"));
            cluster.daemons.push(child);
        }
        cluster.wait_until("the node is idle", |c| {
            output(c.command("sinfo").args(["-h", "-o", "%t"])) == "idle"
        });
        cluster
    }

    /// A Slurm client command talking to this cluster.
    fn command(&self, program: &str) -> Command {
        let mut command = common::fixtures::command(program);
        command.env("SLURM_CONF", &self.conf);
        command
    }

    /// Submits `script` with `args` after the sbatch options `options`; returns the job id.
    fn sbatch(&self, options: &[&str], script: &str, args: &[&Path], extra: &[&str]) -> String {
        let mut command = self.command("sbatch");
        command
            .arg("--parsable")
            .args(options)
            .arg(format!("--output={}/log/job-%A_%a.out", self.dir.display()))
            .arg(repo().join("scripts/slurm").join(script))
            .args(args)
            .args(extra)
            .env("TLEARN", env!("CARGO_BIN_EXE_tlearn"));
        output(&mut command)
    }

    /// Jobs of `job` (an array or one job) still pending or running.
    fn queued(&self, job: &str) -> String {
        output(
            self.command("squeue")
                .args(["-h", "-o", "%i %t", "-j", job]),
        )
    }

    /// Polls `done` every 100 ms; panics with the daemons' logs after [`PATIENCE`].
    fn wait_until(&self, what: &str, mut done: impl FnMut(&Cluster) -> bool) {
        let start = Instant::now();
        while !done(self) {
            assert!(
                start.elapsed() < PATIENCE,
                "Slurm test: gave up waiting until {what}\n{}",
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Every log of the cluster and its jobs, for failure messages.
    fn logs(&self) -> String {
        let mut text = String::new();
        let mut files: Vec<_> = std::fs::read_dir(self.dir.join("log"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        for file in files {
            let content = std::fs::read_to_string(&file).unwrap_or_default();
            let tail: Vec<&str> = content.lines().rev().take(30).collect();
            text += &format!("--- {}\n", file.display());
            for line in tail.into_iter().rev() {
                text += line;
                text += "\n";
            }
        }
        text
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Cancel whatever still runs (a failed test), give the steps a moment, then stop the daemons.
        let _ = self
            .command("scancel")
            .args(["--user", "root"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        for _ in 0..50 {
            let jobs = self
                .command("squeue")
                .arg("-h")
                .output()
                .map(|o| o.stdout.is_empty());
            if jobs.unwrap_or(true) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for daemon in &mut self.daemons {
            let _ = daemon.kill();
            let _ = daemon.wait();
        }
    }
}

/// Runs `command`, fails on error, returns its trimmed stdout.
fn output(command: &mut Command) -> String {
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Why this machine cannot run the test, if it cannot.
fn unavailable() -> Option<String> {
    for program in [
        "slurmctld",
        "slurmd",
        "sbatch",
        "squeue",
        "scancel",
        "sinfo",
    ] {
        let found = common::fixtures::command("sh")
            .arg("-c")
            .arg(format!("command -v {program}"))
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Some(format!("{program} is not installed: run scripts/setup-system.sh --test as root (it runs apt-get install slurmctld slurmd slurm-client), or make test"));
        }
    }
    let uid = output(common::fixtures::command("id").arg("-u"));
    (uid != "0").then(|| "the test cluster runs its daemons as root; run the tests as root".into())
}

#[test]
fn slurm_array_with_a_cancelled_task_resubmitted_merges_into_the_single_machine_cache() {
    if let Some(why) = unavailable() {
        panic!("the Slurm test cannot run: {why}");
    }
    let dir = tempfile::tempdir().unwrap();
    let data = flowers_slice(dir.path(), 4, 6);
    let model = vgg16();
    let options = [
        "--layer",
        "block5_pool",
        "--augment",
        "flip",
        "--copies",
        "1",
        "--splits",
        "1",
        "--batch",
        "2",
        "--quiet",
    ];
    let single = dir.path().join("single.h5");
    let status = tlearn()
        .args(["features", "--threads", "1"])
        .args(options)
        .arg("--data")
        .arg(&data)
        .arg("--backbone")
        .arg(&model)
        .arg("--cache")
        .arg(&single)
        .status()
        .unwrap();
    assert!(status.success());

    let cluster = Cluster::start(&dir.path().join("slurm"));
    let out = dir.path().join("shards");
    let mut extra: Vec<&str> = options.to_vec();
    let model_arg = model.to_string_lossy().to_string();
    extra.extend(["--backbone", &model_arg]);
    let array = cluster.sbatch(
        &["--array=0-3", "--cpus-per-task=1"],
        "features.sbatch",
        &[&data, &out],
        &extra,
    );
    // Cancel task 3 mid-way: once its shard exists and has been written to since (a batch of
    // rows is flushed), with more batches to go.
    let victim = out.join("features.shard-00003-of-00004.h5");
    let modified = |path: &Path| std::fs::metadata(path).and_then(|m| m.modified()).ok();
    cluster.wait_until("task 3 has created its shard", |_| victim.exists());
    let created = modified(&victim);
    cluster.wait_until("task 3 has written rows", |_| modified(&victim) != created);
    output(cluster.command("scancel").arg(format!("{array}_3")));
    cluster.wait_until("the array is over", |c| c.queued(&array).is_empty());
    let logs = cluster.logs();
    let missing = |shard: &Path| {
        FeatureCache::open(shard)
            .unwrap_or_else(|e| panic!("{e}\n{logs}"))
            .status()
            .unwrap()
            .iter()
            .filter(|s| **s == RowStatus::Missing)
            .count()
    };
    for index in 0..3 {
        let shard = out.join(format!("features.shard-0000{index}-of-00004.h5"));
        assert_eq!(missing(&shard), 0, "task {index} completed its shard");
    }
    let left = missing(&victim);
    let rows = FeatureCache::open(&victim).unwrap().rows;
    assert!(
        left > 0 && left < rows,
        "task 3 was not cancelled mid-way ({left} of {rows} rows missing)\n{logs}"
    );
    eprintln!("task 3 was cancelled with {left} of {rows} rows of its shard missing");

    let resubmitted = cluster.sbatch(
        &["--array=3", "--cpus-per-task=1", "--export=ALL,SHARDS=4"],
        "features.sbatch",
        &[&data, &out],
        &extra,
    );
    let merge = cluster.sbatch(
        &[&format!("--dependency=afterok:{resubmitted}")],
        "merge.sbatch",
        &[&out],
        &[],
    );
    cluster.wait_until("the merge job is over", |c| c.queued(&merge).is_empty());
    let merged = out.join("features.h5");
    assert!(merged.exists(), "no merged cache\n{}", cluster.logs());
    let resumed = std::fs::read_to_string(cluster.dir.join(format!("log/job-{resubmitted}_3.out")))
        .unwrap_or_default();
    assert!(
        resumed.contains(&format!("{left} computed now")),
        "the resubmitted task computes only the {left} missing rows: {resumed}"
    );
    assert_same_cache(&merged, &single);
    assert_eq!(feature_bytes(&merged), feature_bytes(&single));
}
