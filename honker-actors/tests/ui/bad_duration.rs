use honker_actors::{job, JobError};

#[job(timeout = "30 parsecs")]
async fn bad_duration(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

fn main() {}
