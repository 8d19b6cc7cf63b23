//! Reading an NWB file takes about the memory of its data: the series are read by HDF5
//! straight into the recording's samples, not into a vector each and then joined (which
//! held the samples twice: `cargo xtask bench io` measured 1.53x before, 1.20x after).
//! A test binary of its own, with one test, so that the process's peak resident memory
//! (`VmHWM`) is that of this one read.

#[cfg(feature = "nwb")]
#[test]
fn an_nwb_file_is_read_in_at_most_1_5_times_the_memory_of_its_data() {
    use hdf5::types::VarLenUnicode;

    // Peak and current resident memory, bytes; None off Linux.
    fn memory() -> Option<(u64, u64)> {
        let s = std::fs::read_to_string("/proc/self/status").ok()?;
        let kb = |key: &str| -> Option<u64> {
            let line = s.lines().find(|l| l.starts_with(key))?;
            Some(line.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024)
        };
        Some((kb("VmHWM:")?, kb("VmRSS:")?))
    }

    let dir = std::env::temp_dir().join(format!("neurosbi-io-nwb-mem-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("many_sweeps.nwb");
    // 150 sweeps of 100 000 int16 codes (one conversion, as an amplifier writes them) and
    // a float32 stimulus each: 90 MB of samples.
    let (sweeps, n) = (150usize, 100_000usize);
    {
        let text = |s: &str| s.parse::<VarLenUnicode>().unwrap();
        let f = hdf5::File::create(&path).unwrap();
        let attr_str = |loc: &hdf5::Location, name: &str, value: &str| {
            loc.new_attr::<VarLenUnicode>()
                .create(name)
                .unwrap()
                .write_scalar(&text(value))
                .unwrap();
        };
        attr_str(&f, "nwb_version", "2.7.0");
        let acq = f.create_group("acquisition").unwrap();
        let stim = f.create_group("stimulus").unwrap();
        let pres = stim.create_group("presentation").unwrap();
        let codes: Vec<i16> = (0..n).map(|k| (k % 2000) as i16 - 1000).collect();
        let amps: Vec<f32> = (0..n).map(|k| (k / 1000) as f32 * 1e-12).collect();
        for s in 0..sweeps {
            for (parent, kind, unit) in [
                (&acq, "CurrentClampSeries", "volts"),
                (&pres, "CurrentClampStimulusSeries", "amperes"),
            ] {
                let g = parent.create_group(&format!("sweep_{s}")).unwrap();
                attr_str(&g, "neurodata_type", kind);
                g.new_attr::<u64>()
                    .create("sweep_number")
                    .unwrap()
                    .write_scalar(&(s as u64))
                    .unwrap();
                let data = if unit == "volts" {
                    g.new_dataset_builder().with_data(&codes).create("data")
                } else {
                    g.new_dataset_builder().with_data(&amps).create("data")
                }
                .unwrap();
                attr_str(&data, "unit", unit);
                let conversion = if unit == "volts" { 3.05e-5 } else { 1.0 };
                data.new_attr::<f64>()
                    .create("conversion")
                    .unwrap()
                    .write_scalar(&conversion)
                    .unwrap();
                let t0 = g.new_dataset::<f64>().create("starting_time").unwrap();
                t0.write_scalar(&(s as f64)).unwrap();
                t0.new_attr::<f64>()
                    .create("rate")
                    .unwrap()
                    .write_scalar(&20_000.0)
                    .unwrap();
            }
        }
    }
    let data_bytes = (sweeps * n * (2 + 4)) as f64;
    let file_bytes = std::fs::metadata(&path).unwrap().len() as f64;
    assert!(
        file_bytes > data_bytes,
        "{file_bytes} bytes for {data_bytes} of samples"
    );
    // Writing the file raised the peak; Linux resets it to the current resident memory.
    if std::fs::write("/proc/self/clear_refs", "5").is_err() || memory().is_none() {
        eprintln!("SKIPPED the memory check: cannot reset the peak resident memory here");
        let _ = std::fs::remove_dir_all(&dir);
        return;
    }
    let (_, before) = memory().unwrap();
    let rec = neurosbi_io::open(&path).unwrap();
    let (peak, _) = memory().unwrap();
    assert_eq!(rec.sweep_count(), sweeps);
    assert_eq!(rec.channels.len(), 2);
    // The samples as stored, so the recording itself is the data's size.
    assert!(
        matches!(rec.raw_sweep(0, 7).unwrap(), neurosbi_io::RawSweep::I16(v) if v == codes_of(n))
    );
    let ratio = (peak - before) as f64 / data_bytes;
    eprintln!(
        "peak {:.1} MB above the {:.1} MB before reading {:.1} MB of samples: {ratio:.2}x",
        (peak - before) as f64 / 1e6,
        before as f64 / 1e6,
        data_bytes / 1e6
    );
    assert!(
        ratio <= 1.5,
        "reading took {ratio:.2}x the memory of the data"
    );
    let _ = std::fs::remove_dir_all(&dir);

    fn codes_of(n: usize) -> Vec<i16> {
        (0..n).map(|k| (k % 2000) as i16 - 1000).collect()
    }
}
