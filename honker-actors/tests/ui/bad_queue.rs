use honker_actors::{job, JobError};

#[job(queue = "emails to send")]
async fn spaced(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

// A task name may be any text (Python names tasks `module.function`), but
// not none.
#[job(name = "")]
async fn nameless(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

#[job(raw = true)]
async fn valued(n: u32) -> Result<(), JobError> {
    let _ = n;
    Ok(())
}

fn main() {}
