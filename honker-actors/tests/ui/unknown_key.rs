use honker_actors::{job, JobError};

#[job(queue = "q", retries = 3)]
async fn unknown_key(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

fn main() {}
