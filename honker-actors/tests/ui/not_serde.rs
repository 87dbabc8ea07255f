use honker_actors::{job, JobError};

struct NotSerde {
    n: u32,
}

#[job]
async fn takes_not_serde(arg: NotSerde) -> Result<(), JobError> {
    let _ = arg.n;
    Ok(())
}

fn main() {}
