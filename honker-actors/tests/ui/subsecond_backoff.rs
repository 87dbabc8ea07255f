use honker_actors::{job, JobError};

#[job(backoff = "1500ms")]
async fn fixed(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

#[job(backoff = "exponential(250ms, 1h)")]
async fn exponential(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

#[job(expires = "500ms")]
async fn expires(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

fn main() {}
