use honker_actors::{job, JobContext, JobError};

#[job]
async fn greet(name: &str) -> Result<(), JobError> {
    let _ = name;
    Ok(())
}

#[job]
async fn checksum(bytes: &[u8]) -> Result<(), JobError> {
    let _ = bytes;
    Ok(())
}

#[job]
async fn with_ctx(ctx: &JobContext, n: u32) -> Result<(), JobError> {
    let _ = (ctx, n);
    Ok(())
}

fn main() {}
