use honker_actors::{job, JobError};

#[job(queue = "emails to send")]
async fn spaced(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

// Without `queue`, the queue is the function's name, checked by the same rule.
#[job]
async fn envoyé(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

fn main() {}
