use honker_actors::{job, JobError};

#[job]
fn not_async(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

fn main() {}
