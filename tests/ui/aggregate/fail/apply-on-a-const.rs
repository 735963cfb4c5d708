use eventsource::aggregate;

#[derive(Debug, Default)]
struct Account;

#[aggregate(name = "Account")]
impl Account {
    #[apply]
    const LIMIT: usize = 10;
}

fn main() {}
